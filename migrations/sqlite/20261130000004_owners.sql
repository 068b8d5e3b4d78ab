-- The name of the token that submitted a job (null when the server ran without tokens), and the
-- job's estimated work, for per-owner quotas.
ALTER TABLE jobs ADD COLUMN owner TEXT;
ALTER TABLE jobs ADD COLUMN work_flops REAL NOT NULL DEFAULT 0;
CREATE INDEX jobs_owner_status ON jobs (owner, status);
