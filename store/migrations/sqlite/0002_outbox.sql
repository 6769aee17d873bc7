-- The outbox: every task event is written in the same transaction as the task change, then
-- relayed in id order to each destination (the Kafka task topics, departmental webhooks).

CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Empty for an event sent back to its department (not admitted), which has no task.
    task_id    TEXT REFERENCES tasks (task_id),
    -- The department whose record the event came from.
    department TEXT NOT NULL,
    kind       TEXT NOT NULL, -- task_dispatched | task_status_changed | event_returned
    payload    TEXT NOT NULL, -- the event as JSON
    created_at INTEGER NOT NULL
);
CREATE INDEX outbox_by_department ON outbox (department, id);

-- Where each destination's relay stands, why it last failed, and who holds its lease (one
-- relaying process per destination at a time, whichever hub process gets it).
CREATE TABLE outbox_destinations (
    destination     TEXT NOT NULL PRIMARY KEY,
    delivered_up_to INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    last_attempt_at INTEGER,
    next_attempt_at INTEGER,
    lease_holder    TEXT,
    lease_until     INTEGER
);
