-- A user's latest challenge is found by insertion order (rowid). Entries of an index on
-- (user, created_at) are ordered by created_at within a user, so that lookup sorted all of
-- the user's challenges on every verify; entries of an index on user alone are ordered by
-- rowid within a user, so it now reads one entry. Lookups of a user's pending challenges
-- use it as they used the old one.
DROP INDEX challenges_by_user;
CREATE INDEX challenges_by_user ON challenges (user);
