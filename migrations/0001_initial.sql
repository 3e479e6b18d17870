-- Challenges, their deliveries (the outbox the delivery worker reads) and the audit trail.
-- Times are UTC milliseconds since the Unix epoch.

CREATE TABLE challenges (
  id           TEXT PRIMARY KEY,
  user         TEXT NOT NULL,
  phone        TEXT NOT NULL,
  locale       TEXT NOT NULL DEFAULT '',
  client_ip    TEXT NOT NULL DEFAULT '',
  status       TEXT NOT NULL CHECK (status IN
                 ('pending', 'approved', 'expired', 'locked', 'canceled', 'superseded')),
  code_hash    BLOB NOT NULL,
  sealed_code  BLOB,
  attempts     INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  created_at   INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL,
  ended_at     INTEGER,
  CHECK (status = 'pending' OR sealed_code IS NULL)
) STRICT;

CREATE INDEX challenges_by_user ON challenges (user, created_at);
CREATE INDEX challenges_pending_by_expiry ON challenges (expires_at) WHERE status = 'pending';

CREATE TABLE deliveries (
  id                  INTEGER PRIMARY KEY,
  challenge_id        TEXT NOT NULL REFERENCES challenges (id) ON DELETE CASCADE,
  state               TEXT NOT NULL CHECK (state IN
                        ('queued', 'sending', 'sent', 'failed', 'unknown')),
  provider            TEXT NOT NULL,
  provider_message_id TEXT NOT NULL DEFAULT '',
  attempts            INTEGER NOT NULL DEFAULT 0,
  provider_attempts   INTEGER NOT NULL DEFAULT 0,
  error               TEXT NOT NULL DEFAULT '',
  created_at          INTEGER NOT NULL,
  next_attempt_at     INTEGER NOT NULL,
  updated_at          INTEGER NOT NULL,
  sent_at             INTEGER
) STRICT;

CREATE INDEX deliveries_by_challenge ON deliveries (challenge_id, id);
CREATE INDEX deliveries_queued_by_due ON deliveries (next_attempt_at) WHERE state = 'queued';
CREATE INDEX deliveries_sending ON deliveries (id) WHERE state = 'sending';

CREATE TABLE audit_events (
  id           INTEGER PRIMARY KEY,
  time         INTEGER NOT NULL,
  event        TEXT NOT NULL,
  user         TEXT NOT NULL DEFAULT '',
  challenge_id TEXT NOT NULL DEFAULT '',
  outcome      TEXT NOT NULL DEFAULT '',
  client_ip    TEXT NOT NULL DEFAULT '',
  phone_masked TEXT NOT NULL DEFAULT '',
  detail       TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX audit_events_by_time ON audit_events (time);
CREATE INDEX audit_events_by_user ON audit_events (user, time);
CREATE INDEX audit_events_by_challenge ON audit_events (challenge_id);

-- The same rows with readable UTC times, for operators at the sqlite3 prompt.
CREATE VIEW audit_log AS
  SELECT id,
         strftime('%Y-%m-%dT%H:%M:%fZ', time / 1000.0, 'unixepoch') AS at,
         event, user, challenge_id, outcome, client_ip, phone_masked, detail
  FROM audit_events;
