-- The newest report's cycle: how long it took, and how many of its probe's cycles took longer
-- than the interval since the probe started (`Report.cycle`; NULL from older probes). For
-- /metrics: a probe that cannot keep its interval checks less often than configured.
--
-- Never edit this file once committed: add 0015_*.sql.

ALTER TABLE servers ADD COLUMN last_cycle_ms INTEGER;
ALTER TABLE servers ADD COLUMN cycle_overruns_total INTEGER;
