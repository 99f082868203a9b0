-- The collector's view of a server's clock. last_at_ms: the newest in-order report's start on
-- the collector's clock (its receipt less the time it waited, as the probe measured it), by
-- which reports are ordered, so a probe whose clock ran ahead cannot make later reports look
-- old. NULL on rows from before: last_started_at_ms stands in. clock_offset_ms: how far the
-- probe's clock was ahead of the collector's (negative: behind) at its newest report; NULL
-- when the probe did not say (it predates the causeway-sent-at header).
ALTER TABLE servers ADD COLUMN last_at_ms BIGINT;
ALTER TABLE servers ADD COLUMN clock_offset_ms BIGINT;
