-- The PostgreSQL schema: the same tables and columns as SQLite's migrations end with, so that
-- both stores answer the HTTP contract byte for byte. Timestamps are RFC 3339 text written by
-- widthlab (six fractional digits, so they sort as strings), JSON documents are text (written
-- and read back verbatim), the seed is a u64 as decimal text; leases are in milliseconds of
-- the database's clock, so that workers on machines with skewed clocks agree.
CREATE TABLE jobs (
    seq              BIGSERIAL PRIMARY KEY,              -- keyset pagination order
    id               TEXT    NOT NULL UNIQUE,
    kind             TEXT    NOT NULL,
    spec             TEXT    NOT NULL,
    spec_hash        TEXT    NOT NULL,
    idempotency_key  TEXT    UNIQUE,
    status           TEXT    NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    progress_done    BIGINT  NOT NULL DEFAULT 0,
    progress_total   BIGINT  NOT NULL,
    progress_detail  TEXT,
    error            TEXT,
    seed             TEXT    NOT NULL,
    attempt          BIGINT  NOT NULL DEFAULT 0,
    stalls           BIGINT  NOT NULL DEFAULT 0,
    cancel_requested BIGINT  NOT NULL DEFAULT 0,
    created_at       TEXT    NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    stamp            TEXT,
    summary          TEXT,
    preset           TEXT,
    owner            TEXT,
    work_flops       DOUBLE PRECISION NOT NULL DEFAULT 0
);
CREATE INDEX jobs_status_seq ON jobs (status, seq);
CREATE INDEX jobs_kind_seq ON jobs (kind, seq);
CREATE INDEX jobs_owner_status ON jobs (owner, status);

CREATE TABLE results (
    job_id  TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    family  TEXT    NOT NULL,
    idx     BIGINT  NOT NULL,
    data    TEXT    NOT NULL,
    PRIMARY KEY (job_id, family, idx)
);

CREATE TABLE heartbeat (
    id  BIGINT PRIMARY KEY CHECK (id = 1),
    at  TEXT   NOT NULL
);
INSERT INTO heartbeat (id, at) VALUES (1, '');

CREATE TABLE units (
    job_id          TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx             BIGINT  NOT NULL,
    finish          BIGINT  NOT NULL DEFAULT 0,
    state           TEXT    NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'leased', 'done')),
    worker          TEXT,
    lease_until     BIGINT,                            -- unix milliseconds, database clock
    attempts        BIGINT  NOT NULL DEFAULT 0,
    progress_done   BIGINT  NOT NULL DEFAULT 0,
    progress_total  BIGINT  NOT NULL,
    PRIMARY KEY (job_id, idx)
);
CREATE INDEX units_claim ON units (state, lease_until);
