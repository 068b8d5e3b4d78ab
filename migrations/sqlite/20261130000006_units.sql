-- Units of work: what workers claim under a lease. A job's compute units (sweep points, search
-- cells, chunks of networks) and one finishing unit, claimable once every compute unit is done.
CREATE TABLE units (
    job_id          TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx             INTEGER NOT NULL,
    finish          INTEGER NOT NULL DEFAULT 0,        -- 1: the unit that builds the job's result
    state           TEXT    NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'leased', 'done')),
    worker          TEXT,                              -- the lease holder, then who completed it
    lease_until     INTEGER,                           -- unix milliseconds
    attempts        INTEGER NOT NULL DEFAULT 0,        -- leases that ended without completion
    progress_done   INTEGER NOT NULL DEFAULT 0,
    progress_total  INTEGER NOT NULL,
    PRIMARY KEY (job_id, idx)
);
CREATE INDEX units_claim ON units (state, lease_until);
