-- A host observation row keeps the time of its newest reading apart from its start.
--
-- A row is updated in place by each report until something changes or a minute has passed
-- (ingest::host). The update moved `started_at_ms` to the newest reading, and so moved the
-- row's entry in `host_observations_by_server_time` with every report: a leaf page of that
-- index written to the WAL per report, a sixth of all the frames of a load. `started_at_ms` is
-- now the row's first reading, as its key in the index, and stays; `last_at_ms` is the newest
-- (NULL in rows from before, whose start was their newest reading).
--
-- Never edit this file once committed: add 0014_*.sql.

ALTER TABLE host_observations ADD COLUMN last_at_ms INTEGER;
