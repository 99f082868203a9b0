-- The overview sums every server's rollups since a time (`WHERE hour_ms >= ? GROUP BY
-- server_id`): with the time first and the counts in the index, that reads the window's rows
-- and nothing else, instead of every row of every server (measured by `cargo bench -p
-- causeway-collector --bench pages`: 50 ms for the 24 h sums of 1,000 servers before).
--
-- `servers.recent_checks` (0004) now keeps the last 30 checks (ingest::rollups::RECENT_MAX),
-- not 60: rows written before shrink with their server's next report.
--
-- Never edit this file once committed: add 0006_*.sql.

DROP INDEX availability_hours_by_time;
DROP INDEX availability_days_by_time;
CREATE INDEX availability_hours_by_time
    ON availability_hours (hour_ms, server_id, checks_total, checks_ok);
CREATE INDEX availability_days_by_time
    ON availability_days (day_ms, server_id, checks_total, checks_ok);
