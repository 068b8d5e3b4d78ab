-- Jobs, their results, and the sweep points of width_sweep jobs.
CREATE TABLE jobs (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,  -- keyset pagination order
    id               TEXT    NOT NULL UNIQUE,
    kind             TEXT    NOT NULL,
    spec             TEXT    NOT NULL,                   -- normalized spec JSON (seed filled in)
    spec_hash        TEXT    NOT NULL,                   -- sha256 of the canonical request body
    idempotency_key  TEXT    UNIQUE,
    status           TEXT    NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    progress_done    INTEGER NOT NULL DEFAULT 0,
    progress_total   INTEGER NOT NULL,
    error            TEXT,
    seed             TEXT    NOT NULL,                   -- u64 as decimal text (SQLite integers are i64)
    attempt          INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT    NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    stamp            TEXT,                               -- JSON, set on success
    summary          TEXT                                -- JSON, set on success
);
CREATE INDEX jobs_status_seq ON jobs (status, seq);
CREATE INDEX jobs_kind_seq ON jobs (kind, seq);

CREATE TABLE layer_stats (
    job_id         TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    layer          INTEGER NOT NULL,
    width          INTEGER NOT NULL,
    forward_mean   REAL,
    forward_std    REAL,
    gradient_mean  REAL,
    gradient_std   REAL,
    data           TEXT    NOT NULL,                     -- the full per-layer report as JSON
    PRIMARY KEY (job_id, layer)
);

CREATE TABLE bound_checks (
    job_id   TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    bound    TEXT NOT NULL,
    verdict  TEXT NOT NULL,
    data     TEXT NOT NULL,                              -- the full check as JSON
    PRIMARY KEY (job_id, bound)
);

CREATE TABLE sweep_points (
    job_id  TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    point   INTEGER NOT NULL,
    width   INTEGER NOT NULL,
    depth   INTEGER NOT NULL,
    data    TEXT    NOT NULL,
    PRIMARY KEY (job_id, point)
);
