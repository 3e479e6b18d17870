-- History for bench/run: ended challenges with their deliveries and audit rows, shaped as
-- the sidecar writes them, so that the run on a full database shows whether request costs
-- grow with what the database holds. bench/run reads this file with the sqlite3 shell on a
-- migrated database, inside one transaction, with these parameters set:
--   @challenges  how many challenges (each with one delivery)
--   @audit       how many audit rows (at most 5 per challenge, in the challenges' order)
--   @users       how many distinct users own the challenges
--   @now_ms      when the run starts, UTC milliseconds
-- Everything lies within the default retention (challenges end in the last 6 days), so the
-- housekeeping thread has nothing to delete during the run. The shell has no generate_series:
-- rows come from recursive CTEs.

CREATE TEMP TABLE spec AS
  SELECT @now_ms - 6 * 86400000 AS first_ms,
         (6 * 86400000 - 3600000) / @challenges AS step_ms;

-- Challenge i belongs to user (i * 7919) mod @users, created at an even pace; its status
-- follows i mod 20: 70 % approved, 10 % expired, 5 % locked, 10 % superseded, 5 % canceled.
INSERT INTO challenges (id, user, phone, locale, client_ip, status, code_hash, sealed_code,
                        attempts, max_attempts, created_at, expires_at, ended_at, region)
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < @challenges),
shaped AS (
  SELECT i,
         (i * 7919) % @users AS u,
         (SELECT first_ms FROM spec) + i * (SELECT step_ms FROM spec) + abs(random() % 400) AS t,
         CASE WHEN i % 20 < 14 THEN 'approved' WHEN i % 20 < 16 THEN 'expired'
              WHEN i % 20 = 16 THEN 'locked' WHEN i % 20 < 19 THEN 'superseded'
              ELSE 'canceled' END AS status
  FROM n)
SELECT
  -- 26 characters of the ids' base32 alphabet: hex digits with 0, 1, 8, 9 moved to letters.
  'ch_' || replace(replace(replace(replace(lower(hex(randomblob(13))), '0', 'q'), '1', 'r'),
                           '8', 's'), '9', 't'),
  printf('user%07d', u),
  printf('+1206%07d', 2000000 + u),
  CASE WHEN u % 10 = 0 THEN 'es' WHEN u % 10 = 1 THEN 'en-US' ELSE '' END,
  printf('203.0.113.%d', u % 256),
  status,
  randomblob(32),
  NULL,
  CASE status WHEN 'approved' THEN 2 WHEN 'locked' THEN 5 WHEN 'expired' THEN 0 ELSE 1 END,
  5,
  t,
  t + 300000,
  t + CASE status WHEN 'approved' THEN 25000 + i % 30000 WHEN 'expired' THEN 300000
                  WHEN 'locked' THEN 90000 WHEN 'superseded' THEN 60000 ELSE 40000 END,
  'US'
FROM shaped;

-- One delivery each, as the worker leaves it: sent, or (1 in 50) refused by the provider.
INSERT INTO deliveries (challenge_id, state, provider, provider_message_id, attempts,
                        provider_attempts, error, created_at, next_attempt_at, updated_at,
                        sent_at)
SELECT id,
       CASE WHEN rowid % 50 = 0 THEN 'failed' ELSE 'sent' END,
       'twilio',
       CASE WHEN rowid % 50 = 0 THEN '' ELSE 'SM' || lower(hex(randomblob(16))) END,
       1, 1,
       CASE WHEN rowid % 50 = 0 THEN 'invalid_number' ELSE '' END,
       created_at, created_at, created_at + 700,
       CASE WHEN rowid % 50 = 0 THEN NULL ELSE created_at + 700 END
FROM challenges ORDER BY rowid;

-- Five audit rows per challenge, in order: its create and delivery, then what its status says
-- happened (wrong codes, approval, resend, supersede, cancel, expiry). In `detail`, @deliver
-- and @by stand for the parts made per row.
INSERT INTO audit_events (time, event, user, challenge_id, outcome, client_ip, phone_masked,
                          detail)
WITH steps(status, k, event, outcome, detail) AS (VALUES
  ('approved', 2, 'verify', 'denied', 'attempts=1/5'),
  ('approved', 3, 'verify', 'approved', 'attempts=2/5'),
  ('approved', 4, 'verify', 'used', 'attempts=2/5'),
  ('expired', 2, 'resend', 'queued', ''),
  ('expired', 3, 'deliver', 'sent', '@deliver'),
  ('expired', 4, 'expire', 'expired', ''),
  ('locked', 2, 'verify', 'denied', 'attempts=4/5'),
  ('locked', 3, 'verify', 'denied', 'attempts=5/5'),
  ('locked', 4, 'verify', 'locked', 'attempts=5/5'),
  ('superseded', 2, 'verify', 'denied', 'attempts=1/5'),
  ('superseded', 3, 'supersede', 'superseded', '@by'),
  ('superseded', 4, 'verify', 'canceled', 'attempts=1/5 reason=superseded'),
  ('canceled', 2, 'verify', 'denied', 'attempts=1/5'),
  ('canceled', 3, 'cancel', 'canceled', ''),
  ('canceled', 4, 'verify', 'canceled', 'attempts=1/5 reason=canceled')),
every_step(status, k, event, outcome, detail) AS (
  SELECT DISTINCT status, 0, 'create', 'pending', '' FROM steps
  UNION ALL SELECT DISTINCT status, 1, 'deliver', 'sent', '@deliver' FROM steps
  UNION ALL SELECT * FROM steps)
SELECT c.created_at + s.k * 7000,
       s.event,
       c.user,
       c.id,
       s.outcome,
       c.client_ip,
       substr(c.phone, 1, 5) || '*****' || substr(c.phone, -2),
       CASE s.detail
         WHEN '@deliver' THEN 'provider=twilio attempt=1 latency_ms=' || (180 + c.rowid % 400) ||
                              ' queued_ms=' || (c.rowid % 5)
         WHEN '@by' THEN 'by=ch_' || replace(replace(replace(replace(lower(hex(randomblob(13))),
                                                                       '0', 'q'), '1', 'r'),
                                                               '8', 's'), '9', 't')
         ELSE s.detail END
FROM challenges c CROSS JOIN every_step s  -- challenge by challenge, in the order they were made
WHERE s.status = c.status
ORDER BY c.rowid, s.k
LIMIT @audit;

DROP TABLE spec;
