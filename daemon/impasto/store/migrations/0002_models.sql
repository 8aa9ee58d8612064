-- Models: what the model manager installed (bundled models and hand-copied folders are
-- found on disk; a row adds where a model came from, its hash and its license).
CREATE TABLE models (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('checkpoint', 'lora', 'embedding', 'vae')),
    version TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    path TEXT NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    hash TEXT NOT NULL DEFAULT '',
    active INTEGER NOT NULL DEFAULT 1,
    family TEXT NOT NULL DEFAULT '',
    precision TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '',
    license TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);

-- Installs: background tasks that bring a model in. A row outlives the daemon so an
-- interrupted install resumes at the next start; state holds per-file resume data.
CREATE TABLE installs (
    id TEXT PRIMARY KEY,
    model_id TEXT NOT NULL,
    source TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL
        CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    stage TEXT NOT NULL DEFAULT 'queued',
    bytes_done INTEGER NOT NULL DEFAULT 0,
    bytes_total INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL
);

CREATE INDEX installs_status ON installs (status);
CREATE INDEX installs_created ON installs (created_at DESC);
