-- The PostgreSQL schema: the same tables, columns and views as the SQLite one (migrations/),
-- as it stands after the SQLite migrations 0001 to 0006, so operators ask both the same
-- questions. Times are UTC milliseconds since the Unix epoch in BIGINT columns, so hosts in
-- different time zones agree. "user" is a reserved word here and is always quoted.

CREATE TABLE challenges (
  -- Insertion order: a user's latest challenge is the one with the highest seq (SQLite's rowid).
  seq          BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
  id           TEXT PRIMARY KEY,
  "user"       TEXT NOT NULL,
  phone        TEXT NOT NULL,
  locale       TEXT NOT NULL DEFAULT '',
  client_ip    TEXT NOT NULL DEFAULT '',
  status       TEXT NOT NULL CHECK (status IN
                 ('pending', 'approved', 'expired', 'locked', 'canceled', 'superseded')),
  code_hash    BYTEA NOT NULL,
  sealed_code  BYTEA,
  attempts     INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  created_at   BIGINT NOT NULL,
  expires_at   BIGINT NOT NULL,
  ended_at     BIGINT,
  region       TEXT NOT NULL DEFAULT '',
  CHECK (status = 'pending' OR sealed_code IS NULL)
);

CREATE INDEX challenges_by_user ON challenges ("user", seq);
CREATE INDEX challenges_pending_by_expiry ON challenges (expires_at) WHERE status = 'pending';
CREATE INDEX challenges_by_ended_at ON challenges (ended_at) WHERE ended_at IS NOT NULL;

CREATE TABLE deliveries (
  id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  challenge_id        TEXT NOT NULL REFERENCES challenges (id) ON DELETE CASCADE,
  state               TEXT NOT NULL CHECK (state IN
                        ('queued', 'sending', 'sent', 'failed', 'unknown')),
  provider            TEXT NOT NULL,
  provider_message_id TEXT NOT NULL DEFAULT '',
  attempts            INTEGER NOT NULL DEFAULT 0,
  provider_attempts   INTEGER NOT NULL DEFAULT 0,
  error               TEXT NOT NULL DEFAULT '',
  created_at          BIGINT NOT NULL,
  next_attempt_at     BIGINT NOT NULL,
  -- While "sending": when the delivery was claimed; the claim's lease runs from here.
  updated_at          BIGINT NOT NULL,
  sent_at             BIGINT
);

CREATE INDEX deliveries_by_challenge ON deliveries (challenge_id, id);
CREATE INDEX deliveries_queued_by_due ON deliveries (next_attempt_at, id) WHERE state = 'queued';
CREATE INDEX deliveries_sending ON deliveries (updated_at) WHERE state = 'sending';

CREATE TABLE audit_events (
  id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  time         BIGINT NOT NULL,
  event        TEXT NOT NULL,
  "user"       TEXT NOT NULL DEFAULT '',
  challenge_id TEXT NOT NULL DEFAULT '',
  outcome      TEXT NOT NULL DEFAULT '',
  client_ip    TEXT NOT NULL DEFAULT '',
  phone_masked TEXT NOT NULL DEFAULT '',
  detail       TEXT NOT NULL DEFAULT ''
);

CREATE INDEX audit_events_by_time ON audit_events (time);
CREATE INDEX audit_events_by_user ON audit_events ("user", time);
CREATE INDEX audit_events_by_challenge ON audit_events (challenge_id);

-- One row per counted event per limit scope and key. The sidecars that share the database
-- count a key one at a time: a transaction takes an advisory lock on (scope, key) before it
-- reads the key's events and keeps it until it commits.
CREATE TABLE limit_events (
  scope TEXT NOT NULL,
  key   TEXT NOT NULL,
  time  BIGINT NOT NULL
);

CREATE INDEX limit_events_by_key ON limit_events (scope, key, time);
CREATE INDEX limit_events_by_time ON limit_events (scope, time);

CREATE TABLE failure_streaks (
  "user"          TEXT PRIMARY KEY,
  failures        INTEGER NOT NULL,
  last_failure_at BIGINT NOT NULL
);

CREATE TABLE region_counts (
  region    TEXT NOT NULL,
  bucket    BIGINT NOT NULL,
  sends     BIGINT NOT NULL DEFAULT 0,
  approvals BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (region, bucket)
);

CREATE TABLE region_suspensions (
  region TEXT PRIMARY KEY,
  since  BIGINT NOT NULL,
  until  BIGINT NOT NULL
);

CREATE TABLE readiness_probe (
  id     INTEGER PRIMARY KEY CHECK (id = 1),
  probes BIGINT NOT NULL
);

INSERT INTO readiness_probe (id, probes) VALUES (1, 0);

-- Views: the same names and columns as SQLite's, for operators at the psql prompt.
CREATE FUNCTION otp_utc(ms BIGINT) RETURNS TEXT LANGUAGE SQL IMMUTABLE AS
  $$ SELECT to_char(to_timestamp(ms / 1000.0) AT TIME ZONE 'UTC',
                    'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

CREATE VIEW audit_log AS
  SELECT id, otp_utc(time) AS at, event, "user", challenge_id, outcome, client_ip,
         phone_masked, detail
  FROM audit_events;

CREATE VIEW failed_verifications_last_hour AS
  SELECT "user",
         COUNT(*) AS failures,
         COUNT(*) FILTER (WHERE outcome = 'denied') AS wrong_codes,
         COUNT(*) FILTER (WHERE outcome <> 'denied') AS refused,
         COUNT(DISTINCT NULLIF(client_ip, '')) AS client_ips,
         otp_utc(MAX(time)) AS last_failure_at
  FROM audit_events
  WHERE event = 'verify' AND outcome IN ('denied', 'locked', 'refused')
    AND time > (extract(epoch FROM now())::BIGINT - 3600) * 1000
  GROUP BY "user"
  ORDER BY failures DESC, "user";

CREATE VIEW deliveries_by_state AS
  SELECT state, provider, COUNT(*) AS deliveries, otp_utc(MAX(updated_at)) AS last_update_at
  FROM deliveries
  GROUP BY state, provider
  ORDER BY state, provider;

CREATE VIEW refusals_by_limit AS
  SELECT split_part(substr(detail, 7), ' ', 1) AS limit_name,
         event,
         COUNT(*) AS refusals,
         COUNT(*) FILTER (WHERE time > (extract(epoch FROM now())::BIGINT - 3600) * 1000)
           AS last_hour,
         COUNT(*) FILTER (WHERE time > (extract(epoch FROM now())::BIGINT - 86400) * 1000)
           AS last_day,
         otp_utc(MAX(time)) AS last_refusal_at
  FROM audit_events
  WHERE outcome = 'refused' AND detail LIKE 'limit=%'
  GROUP BY limit_name, event
  ORDER BY refusals DESC, limit_name, event;

CREATE VIEW daily_conversion AS
  SELECT to_char(to_timestamp(time / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
         COUNT(*) FILTER (WHERE event = 'create' AND outcome = 'pending') AS created,
         COUNT(*) FILTER (WHERE event = 'verify' AND outcome = 'approved') AS approved,
         ROUND(1.0 * COUNT(*) FILTER (WHERE event = 'verify' AND outcome = 'approved') /
               NULLIF(COUNT(*) FILTER (WHERE event = 'create' AND outcome = 'pending'), 0), 3)
           AS conversion
  FROM audit_events
  WHERE event IN ('create', 'verify')
  GROUP BY day
  ORDER BY day DESC;
