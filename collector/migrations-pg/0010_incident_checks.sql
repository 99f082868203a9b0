-- As SQLite's 0018: an incident's checks (for its failure ratio) and when its bursts began.
--
-- Never edit this file once committed: add 0011_*.sql.

ALTER TABLE incidents ADD COLUMN checks BIGINT NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN burst_starts TEXT;
