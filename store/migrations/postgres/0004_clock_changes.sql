-- When a clock row was last written (epoch milliseconds of the writer's wall clock). The SLA
-- tracker of every hub process polls it to learn of clocks started, stopped or moved by
-- another process (the router dispatching, a console acting through another instance).
ALTER TABLE sla_clocks ADD COLUMN changed_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX sla_clocks_changed ON sla_clocks (changed_at, id);
