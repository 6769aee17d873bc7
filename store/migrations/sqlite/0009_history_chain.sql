-- Tamper evidence (src/history.rs, src/audit.rs). Each history entry carries the SHA-256 of
-- its content and of the entry before it (`prev_hash`, empty for a task's first entry), so
-- an entry edited in the database no longer matches its hash or the entries after it.
-- Entries written before this migration have neither.
ALTER TABLE task_history ADD COLUMN prev_hash TEXT;
ALTER TABLE task_history ADD COLUMN hash TEXT;

-- Checkpoints of the chains' heads: each records the heads that moved since the one before
-- (audit_heads) and a digest over them and the previous checkpoint's digest, signed with
-- HUB_AUDIT_KEY when it is set. A chain recomputed after an edit then no longer ends in a
-- head a checkpoint recorded. `id` counts up from 1 with no gaps: a deleted checkpoint shows.
CREATE TABLE audit_checkpoints (
    id          BIGINT NOT NULL PRIMARY KEY,
    prev_digest TEXT NOT NULL,
    at          BIGINT NOT NULL,
    heads       BIGINT NOT NULL,
    digest      TEXT NOT NULL,
    signature   TEXT
);

CREATE TABLE audit_heads (
    checkpoint_id BIGINT NOT NULL REFERENCES audit_checkpoints (id),
    task_id       TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    hash          TEXT NOT NULL,
    PRIMARY KEY (checkpoint_id, task_id)
);
CREATE INDEX audit_heads_task ON audit_heads (task_id, seq);
