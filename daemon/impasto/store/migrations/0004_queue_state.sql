-- The queue's own state across restarts: `paused` ('1' or '0'), so a paused queue stays paused.
CREATE TABLE queue_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- A digest of the request a job with an Idempotency-Key was made from, so a reuse of the key
-- with another request is refused rather than answered with the first job. NULL without a key.
ALTER TABLE jobs ADD COLUMN request_hash TEXT;
