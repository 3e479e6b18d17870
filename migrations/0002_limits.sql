-- Abuse defenses: sliding-window rate limits, failure streaks, and per-region send and
-- approval counts for the SMS-pumping guard. Every table stays bounded: limit events are
-- never kept past their longest window and are never more than a rule's count per key.

ALTER TABLE challenges ADD COLUMN region TEXT NOT NULL DEFAULT '';

-- One row per counted event (a send, a failed verification) per limit scope and key.
CREATE TABLE limit_events (
  scope TEXT NOT NULL,  -- 'user_sends', 'phone_sends', 'ip_sends', 'region_sends', ...
  key   TEXT NOT NULL,  -- the user, phone, IP or region; '*' for the global limit
  time  INTEGER NOT NULL
) STRICT;

CREATE INDEX limit_events_by_key ON limit_events (scope, key, time);
CREATE INDEX limit_events_by_time ON limit_events (scope, time);

-- Consecutive failed verifications of a user without a success.
CREATE TABLE failure_streaks (
  user            TEXT PRIMARY KEY,
  failures        INTEGER NOT NULL,
  last_failure_at INTEGER NOT NULL
) STRICT;

-- Sends and approvals per region per minute, for the conversion the pumping guard watches.
CREATE TABLE region_counts (
  region    TEXT NOT NULL,
  bucket    INTEGER NOT NULL,  -- start of the minute, UTC milliseconds
  sends     INTEGER NOT NULL DEFAULT 0,
  approvals INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (region, bucket)
) STRICT, WITHOUT ROWID;

-- Regions whose sends are refused until `until` because they did not convert.
CREATE TABLE region_suspensions (
  region TEXT PRIMARY KEY,
  since  INTEGER NOT NULL,
  until  INTEGER NOT NULL
) STRICT;
