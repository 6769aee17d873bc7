-- What the indicators count from a case's workflow state, in columns beside the state's JSON
-- (written by the same statement): parsing the JSON of a city-year's cases took seconds.
ALTER TABLE tasks ADD COLUMN rework_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN extension_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN callback_satisfied BIGINT; -- 1 satisfied, 0 not, NULL no verdict
UPDATE tasks
   SET rework_count = COALESCE((workflow::jsonb->>'rework_count')::bigint, 0),
       extension_count = COALESCE((workflow::jsonb->>'extension_count')::bigint, 0),
       callback_satisfied = CASE workflow::jsonb->>'callback_satisfied'
                                WHEN 'true' THEN 1 WHEN 'false' THEN 0 END
 WHERE workflow IS NOT NULL;

-- The facts each case's indicators are counted from, one narrow row per task, rewritten in
-- the transaction of every change to the task (store/src/indicators.rs): the indicators of a
-- city-year then read one small table instead of every case's history and clocks. The
-- columns a listing filter narrows indicators by are repeated from the task.
-- (`ORDER BY c.id + 0`: ordered by the id index itself, PostgreSQL walks the whole clock
-- table looking for each task's first sign-for clock.)
CREATE TABLE case_facts (
    task_id            TEXT NOT NULL PRIMARY KEY REFERENCES tasks (task_id),
    created_at         BIGINT NOT NULL,
    department         TEXT NOT NULL,
    status             TEXT NOT NULL,
    street_code        TEXT,
    community_code     TEXT,
    lead_unit_id       TEXT,
    lead_unit_role     TEXT,
    co_handlers        TEXT NOT NULL,
    dispatched_at      BIGINT, -- the first dispatch
    signed_for_at      BIGINT, -- the first sign-for
    resolved_at        BIGINT, -- the last feedback
    closed_at          BIGINT, -- the last closing
    sign_for_due       BIGINT, -- the first sign-for clock's deadline
    handling_due       BIGINT, -- the latest handling or rework deadline
    rework_count       BIGINT NOT NULL,
    extension_count    BIGINT NOT NULL,
    callback_satisfied BIGINT
);
CREATE INDEX case_facts_by_created ON case_facts (created_at);
INSERT INTO case_facts (task_id, created_at, department, status, street_code, community_code, lead_unit_id, lead_unit_role, co_handlers, dispatched_at, signed_for_at, resolved_at, closed_at, sign_for_due, handling_due, rework_count, extension_count, callback_satisfied)
SELECT t.task_id, t.created_at, t.department, t.status, t.street_code, t.community_code,
       t.lead_unit_id, t.lead_unit_role, CAST(t.co_handlers AS TEXT),
       (SELECT MIN(h.at) FROM task_history h WHERE h.task_id = t.task_id
           AND h.to_status = 'dispatched' AND (h.from_status IS NULL OR h.from_status <> h.to_status)),
       (SELECT MIN(h.at) FROM task_history h WHERE h.task_id = t.task_id
           AND h.to_status = 'signed_for' AND (h.from_status IS NULL OR h.from_status <> h.to_status)),
       (SELECT MAX(h.at) FROM task_history h WHERE h.task_id = t.task_id
           AND h.to_status = 'resolved' AND (h.from_status IS NULL OR h.from_status <> h.to_status)),
       (SELECT MAX(h.at) FROM task_history h WHERE h.task_id = t.task_id
           AND h.to_status = 'closed' AND (h.from_status IS NULL OR h.from_status <> h.to_status)),
       (SELECT c.deadline FROM sla_clocks c WHERE c.task_id = t.task_id
           AND c.clock_key LIKE '{"kind":"sign!_for"}#%' ESCAPE '!' ORDER BY c.id + 0 LIMIT 1),
       (SELECT MAX(c.deadline) FROM sla_clocks c WHERE c.task_id = t.task_id
           AND (c.clock_key LIKE '{"kind":"handling",%' OR c.clock_key LIKE '{"kind":"rework"}#%')),
       t.rework_count, t.extension_count, t.callback_satisfied
  FROM tasks t
 WHERE true;
