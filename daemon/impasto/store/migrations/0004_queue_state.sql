-- The queue's own state across restarts: `paused` ('1' or '0'), so a paused queue stays paused.
CREATE TABLE queue_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
