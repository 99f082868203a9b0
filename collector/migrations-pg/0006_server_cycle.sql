-- As SQLite's 0014: the newest report's cycle duration and its probe's overrun count.
--
-- Never edit this file once committed: add 0007_*.sql.

ALTER TABLE servers ADD COLUMN last_cycle_ms BIGINT;
ALTER TABLE servers ADD COLUMN cycle_overruns_total BIGINT;
