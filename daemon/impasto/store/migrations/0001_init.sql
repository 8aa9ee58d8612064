-- Jobs: the persistent queue and the history. seq is the insertion order and the
-- tie-break between equal priorities; AUTOINCREMENT so a deleted seq is never reused.
CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL
        CHECK (status IN ('queued', 'processing', 'completed', 'failed', 'cancelled')),
    priority INTEGER NOT NULL DEFAULT 0,
    request TEXT NOT NULL,
    results TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    idempotency_key TEXT UNIQUE,
    model TEXT NOT NULL,
    prompt TEXT NOT NULL,
    current_step INTEGER NOT NULL DEFAULT 0,
    total_steps INTEGER NOT NULL DEFAULT 0,
    worker_id TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    completed_at REAL
);

-- The run order of the queue; partial, so it holds only the waiting jobs.
CREATE INDEX jobs_run_order ON jobs (priority DESC, seq ASC) WHERE status = 'queued';
CREATE INDEX jobs_status ON jobs (status);
-- History pages newest first with a (created_at, seq) keyset cursor.
CREATE INDEX jobs_created ON jobs (created_at DESC, seq DESC);

-- Events: the live stream, kept for replay after a reconnect or a daemon restart.
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    job_id TEXT,
    data TEXT NOT NULL,
    time REAL NOT NULL
);

CREATE INDEX events_job ON events (job_id, seq);
