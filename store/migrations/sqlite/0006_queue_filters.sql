-- What the console's queue filters on.
-- The hub's own category code (taxonomy, e.g. E0103) beside the department's, so the queue
-- can be filtered by category or major class (its first three characters) with a prefix.
ALTER TABLE tasks ADD COLUMN taxonomy_code TEXT;
UPDATE tasks SET taxonomy_code = json_extract(category, '$.code');
-- When a clock passes its warning point (epoch ms), for "at risk" (即将超时).
ALTER TABLE sla_clocks ADD COLUMN warning_at INTEGER;
UPDATE sla_clocks
   SET warning_at = CAST(ROUND((julianday(json_extract(clock, '$.warning_at')) - 2440587.5) * 86400000) AS INTEGER)
 WHERE json_extract(clock, '$.warning_at') IS NOT NULL;
