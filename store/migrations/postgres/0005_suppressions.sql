-- Events a routing rule suppressed (no task, by design): kept so that every source record
-- has exactly one recorded outcome, and administrators can see what the rules held back.
CREATE TABLE suppressions (
    event_id       TEXT NOT NULL PRIMARY KEY,
    source_system  TEXT NOT NULL,
    source_id      TEXT NOT NULL,
    department     TEXT NOT NULL,
    category_code  TEXT NOT NULL,
    community_code TEXT,
    rule_id        TEXT NOT NULL,
    rules_version  TEXT NOT NULL,
    suppressed_at  BIGINT NOT NULL,
    CONSTRAINT suppressions_source_record UNIQUE (source_system, source_id)
);
CREATE INDEX suppressions_by_time ON suppressions (suppressed_at DESC, event_id);
