-- The case workflow: each task's state machine (JSON of hub_router::workflow::TaskState) with
-- an optimistic version, the earliest open SLA deadline and whether a clock breached; the
-- SLA clocks with their events; and the alerts raised on them, claimed once across processes.

ALTER TABLE tasks ADD COLUMN workflow TEXT; -- NULL until the first lifecycle action
ALTER TABLE tasks ADD COLUMN workflow_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN due_at BIGINT; -- the earliest deadline of an open clock
ALTER TABLE tasks ADD COLUMN breached BIGINT NOT NULL DEFAULT 0;
CREATE INDEX tasks_by_due ON tasks (due_at);

-- What was done, as JSON (hub_router::workflow::Action), for lifecycle actions.
ALTER TABLE task_history ADD COLUMN action TEXT;

CREATE TABLE sla_clocks (
    id        BIGSERIAL PRIMARY KEY, -- the tracker's clock id
    task_id   TEXT NOT NULL REFERENCES tasks (task_id),
    clock_key TEXT NOT NULL, -- kind and round: one clock of a kind per round
    clock     TEXT NOT NULL, -- JSON of hub_router::workflow::SlaClock, events included
    is_open   BIGINT NOT NULL,
    deadline  BIGINT,
    UNIQUE (task_id, clock_key)
);
CREATE INDEX sla_clocks_open ON sla_clocks (is_open, deadline);

-- An alert (warning, breach, escalation step overdue) raised on a clock. The primary key is
-- the claim: whichever hub process inserts the row raises the alert, the others do not.
CREATE TABLE sla_alerts (
    clock_id  BIGINT NOT NULL REFERENCES sla_clocks (id),
    kind      TEXT NOT NULL,
    due_at    BIGINT NOT NULL,
    raised_at BIGINT NOT NULL,
    raised_by TEXT NOT NULL,
    PRIMARY KEY (clock_id, kind)
);
