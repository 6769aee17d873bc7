-- Tasks, their status history, the reports merged into them, the events sent back to their
-- department, and connector cursors.
-- Times are epoch milliseconds (UTC), as in the PostgreSQL schema.

CREATE TABLE tasks (
    task_id        TEXT NOT NULL PRIMARY KEY,
    event_id       TEXT NOT NULL,
    source_system  TEXT NOT NULL,
    source_id      TEXT NOT NULL,
    department     TEXT NOT NULL,
    category_code  TEXT NOT NULL,
    category_name  TEXT,
    description    TEXT NOT NULL,
    status         TEXT NOT NULL,
    district_code  TEXT,
    street_code    TEXT,
    community_code TEXT,
    grid_code      TEXT,
    place_level    TEXT NOT NULL,
    place_method   TEXT NOT NULL,
    matched_area   TEXT NOT NULL,
    lead_unit_id   TEXT,
    lead_unit_role TEXT,
    lead_unit_name TEXT,
    co_handlers    TEXT NOT NULL, -- JSON array of {unit_id, role, name}
    location       TEXT NOT NULL, -- JSON {point, address, grid_code}
    explanation    TEXT NOT NULL, -- JSON, why the task went where it went
    rules_version  TEXT NOT NULL,
    occurred_at    INTEGER NOT NULL,
    received_at    INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    category       TEXT NOT NULL, -- {code, name, group} in the hub's taxonomy
    category_group TEXT NOT NULL,  -- duplicates are looked for within a group
    priority       TEXT NOT NULL,
    sla_policy     TEXT,
    place_lon      REAL,  -- where the event stands (duplicate detection measures from it)
    place_lat      REAL,
    -- Idempotent creation: one task per departmental record.
    UNIQUE (source_system, source_id)
) STRICT;

-- Listing is newest first, overall or within a community, street or status.
CREATE INDEX tasks_by_created ON tasks (created_at DESC, task_id DESC);
CREATE INDEX tasks_by_community ON tasks (community_code, created_at DESC, task_id DESC);
CREATE INDEX tasks_by_street ON tasks (street_code, created_at DESC, task_id DESC);
CREATE INDEX tasks_by_status ON tasks (status, created_at DESC, task_id DESC);
CREATE INDEX tasks_by_group ON tasks (category_group, occurred_at);

CREATE TABLE task_history (
    task_id     TEXT NOT NULL REFERENCES tasks (task_id),
    seq         INTEGER NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    actor       TEXT NOT NULL,
    note        TEXT,
    at          INTEGER NOT NULL,
    PRIMARY KEY (task_id, seq)
) STRICT;

CREATE TABLE connector_cursors (
    connector  TEXT NOT NULL PRIMARY KEY,
    cursor     TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- Every report that became or joined a task: the first one, and the duplicates merged into
-- it. Each reporter's department receives the task's later status changes.
CREATE TABLE task_reports (
    task_id       TEXT NOT NULL REFERENCES tasks (task_id),
    event_id      TEXT NOT NULL,
    source_system TEXT NOT NULL,
    source_id     TEXT NOT NULL,
    department    TEXT NOT NULL,
    occurred_at   INTEGER NOT NULL,
    linked_at     INTEGER NOT NULL,
    CONSTRAINT task_reports_source_record UNIQUE (source_system, source_id)
);
CREATE INDEX task_reports_by_task ON task_reports (task_id, department);

-- Events a community's admission list did not admit: they go back to their department's
-- own queue, with the reason, and never into the community's task list.
CREATE TABLE department_returns (
    event_id       TEXT NOT NULL PRIMARY KEY,
    source_system  TEXT NOT NULL,
    source_id      TEXT NOT NULL,
    department     TEXT NOT NULL,
    category_code  TEXT NOT NULL,
    community_code TEXT,
    reason         TEXT NOT NULL,
    explanation    TEXT NOT NULL,
    returned_at    INTEGER NOT NULL,
    CONSTRAINT department_returns_source_record UNIQUE (source_system, source_id)
);
CREATE INDEX department_returns_by_department ON department_returns (department, returned_at DESC);
