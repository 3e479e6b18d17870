-- Views for the questions operators ask most often, to read with sqlite3 on a live database.
-- Times shown are RFC 3339 UTC; "the last hour" is counted back from the moment of the query.

-- Failed verifications per user in the last hour, the most failing first: wrong codes
-- (denied) and verifies refused without a comparison (locked, or refused by a failure
-- budget), from how many client addresses, and when the last one was.
CREATE VIEW failed_verifications_last_hour AS
  SELECT user,
         COUNT(*) AS failures,
         SUM(outcome = 'denied') AS wrong_codes,
         SUM(outcome <> 'denied') AS refused,
         COUNT(DISTINCT NULLIF(client_ip, '')) AS client_ips,
         strftime('%Y-%m-%dT%H:%M:%fZ', MAX(time) / 1000.0, 'unixepoch') AS last_failure_at
  FROM audit_events
  WHERE event = 'verify' AND outcome IN ('denied', 'locked', 'refused')
    AND time > (CAST(strftime('%s', 'now') AS INTEGER) - 3600) * 1000
  GROUP BY user
  ORDER BY failures DESC, user;

-- Deliveries by state and by the provider that has (or last had) them, over the deliveries
-- the database still keeps (see [retention]).
CREATE VIEW deliveries_by_state AS
  SELECT state,
         provider,
         COUNT(*) AS deliveries,
         strftime('%Y-%m-%dT%H:%M:%fZ', MAX(updated_at) / 1000.0, 'unixepoch') AS last_update_at
  FROM deliveries
  GROUP BY state, provider
  ORDER BY state, provider;

-- Requests refused by an abuse limit, per limit (the problem code the caller got) and
-- per request kind (create, resend, verify), with the last hour's and day's share.
CREATE VIEW refusals_by_limit AS
  SELECT substr(detail, 7, instr(detail || ' ', ' ') - 7) AS limit_name,
         event,
         COUNT(*) AS refusals,
         SUM(time > (CAST(strftime('%s', 'now') AS INTEGER) - 3600) * 1000) AS last_hour,
         SUM(time > (CAST(strftime('%s', 'now') AS INTEGER) - 86400) * 1000) AS last_day,
         strftime('%Y-%m-%dT%H:%M:%fZ', MAX(time) / 1000.0, 'unixepoch') AS last_refusal_at
  FROM audit_events
  WHERE outcome = 'refused' AND detail LIKE 'limit=%'
  GROUP BY limit_name, event
  ORDER BY refusals DESC, limit_name, event;

-- Per UTC day: challenges started, approved, and the share approved (a falling share is
-- how SMS pumping and delivery trouble show).
CREATE VIEW daily_conversion AS
  SELECT date(time / 1000, 'unixepoch') AS day,
         SUM(event = 'create' AND outcome = 'pending') AS created,
         SUM(event = 'verify' AND outcome = 'approved') AS approved,
         ROUND(1.0 * SUM(event = 'verify' AND outcome = 'approved') /
               NULLIF(SUM(event = 'create' AND outcome = 'pending'), 0), 3) AS conversion
  FROM audit_events
  WHERE event IN ('create', 'verify')
  GROUP BY day
  ORDER BY day DESC;
