-- Outbox order without a lock on the write path. Writers no longer queue on one advisory
-- lock so that ids commit in order; an entry is written with its `entry_id` only, and the
-- relays number committed entries (`id`, the order every destination delivers in) under a
-- lock that only they take (store/src/outbox.rs, `SEQUENCE`). An entry that commits late is
-- numbered after those already numbered, so no relay reading "after id N" skips it.
ALTER TABLE outbox RENAME COLUMN id TO entry_id;
ALTER TABLE outbox ADD COLUMN id BIGINT;
UPDATE outbox SET id = entry_id;
CREATE UNIQUE INDEX outbox_by_id ON outbox (id);
CREATE INDEX outbox_unsequenced ON outbox (entry_id) WHERE id IS NULL;
DROP INDEX outbox_by_department;
CREATE INDEX outbox_by_department ON outbox (department, id);
