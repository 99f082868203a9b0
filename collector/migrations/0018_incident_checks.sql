-- An intermittent incident's failure ratio and the times of its bursts:
-- `checks` counts every check of the server from the incident's start to its last failure,
-- the healthy ones of the gaps between its bursts included (0 for incidents stored before
-- this column: unknown); `burst_starts` holds when each burst after the first began, in ms,
-- space-separated, the first 49 of them (bounded: a fault that recurs for weeks stays one
-- short row).
--
-- Never edit this file once committed: add 0019_*.sql.

ALTER TABLE incidents ADD COLUMN checks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN burst_starts TEXT;
