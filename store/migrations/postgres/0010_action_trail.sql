-- The trail of what people and departmental systems did through the API and the console
-- (src/actions.rs): every state-changing request of a signed-in account, and every console
-- sign-in, whatever its outcome. Rows are only ever added; an administrator reads and
-- exports them (GET /api/v1/audit/actions, hub audit actions).
CREATE TABLE audit_actions (
    id      BIGSERIAL PRIMARY KEY,
    at      BIGINT NOT NULL,     -- epoch milliseconds
    actor   TEXT NOT NULL,     -- the account's name; empty for a refused sign-in
    role    TEXT NOT NULL,     -- administrator | street | community | department | empty
    via     TEXT NOT NULL,     -- api | console
    action  TEXT NOT NULL,     -- e.g. task.sign_for, sign_in, POST /api/v1/deadletters/replay
    target  TEXT NOT NULL,     -- what it acted on (a task id, a dead-letter source), or empty
    outcome BIGINT NOT NULL,     -- the HTTP status answered
    source  TEXT NOT NULL,     -- the client's address, or empty when unknown
    detail  TEXT NOT NULL      -- what the answer said when it refused, or a count
);
CREATE INDEX audit_actions_at ON audit_actions (at, id);
