-- Runs in a row that a crash ended before the job stored any new result (attempt counts every
-- crash re-queue; stalls only the ones without progress, and fail a job at 3).
ALTER TABLE jobs ADD COLUMN stalls INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET stalls = attempt;

-- Readiness writes here: a database that cannot take a write is not ready.
CREATE TABLE heartbeat (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    at  TEXT    NOT NULL
);
INSERT INTO heartbeat (id, at) VALUES (1, '');
