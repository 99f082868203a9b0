-- As SQLite's 0017: an incident reopened within the merge gap counts its bursts.
--
-- Never edit this file once committed: add 0010_*.sql.

ALTER TABLE incidents ADD COLUMN bursts BIGINT NOT NULL DEFAULT 1;
