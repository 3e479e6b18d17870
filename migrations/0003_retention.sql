-- Retention: ended challenges are deleted, oldest first, some time after they end (their
-- deliveries go with them by the foreign key's ON DELETE CASCADE). This index finds them
-- without reading the pending ones.

CREATE INDEX challenges_by_ended_at ON challenges (ended_at) WHERE ended_at IS NOT NULL;
