-- One row that the readiness check (GET /readyz and the systemd watchdog) rewrites: only a
-- commit that reaches the disk proves the database can still be written. A file turned
-- read-only under a running process, or a full disk, still takes the write lock.
CREATE TABLE readiness_probe (
  id     INTEGER PRIMARY KEY CHECK (id = 1),
  probes INTEGER NOT NULL
) STRICT;

INSERT INTO readiness_probe (id, probes) VALUES (1, 0);
