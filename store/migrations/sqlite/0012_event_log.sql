-- The event log (src/events.rs): every event the routing pipeline accepted, with the fields
-- it was routed on (its reporter left out: a replay needs no one's name or phone), kept for
-- `[replay] keep_days`, so that a candidate rules version can be replayed over a period
-- (`hub rules replay`). A redelivered event changes nothing.
CREATE TABLE event_log (
    source_system TEXT NOT NULL,
    source_id     TEXT NOT NULL,
    received_at   BIGINT NOT NULL,
    event         TEXT NOT NULL, -- the CivicEvent as JSON
    PRIMARY KEY (source_system, source_id)
);
CREATE INDEX event_log_by_time ON event_log (received_at, source_system, source_id);
