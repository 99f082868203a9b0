-- As SQLite's 0013: a host observation row's newest reading apart from its first, so the
-- in-place update of each report leaves the row's start (its index entry and its day's
-- partition) alone.
--
-- Never edit this file once committed: add 0006_*.sql.

ALTER TABLE host_observations ADD COLUMN last_at_ms BIGINT;
