-- Rollups for the web page and /metrics: what a fleet overview of 1,000 servers needs must not
-- read 30 days of reports per server. Each is kept up to date by ingest, in the report's own
-- transaction, from every stored report (old replays included: availability counts them).
--
-- Never edit this file once committed: add 0005_*.sql.

-- Checks per server and UTC hour, and per server and UTC day (days for the 7d, 30d and 90d
-- figures and the day strip; hours for 24h).
CREATE TABLE availability_hours (
    server_id    INTEGER NOT NULL REFERENCES servers (id),
    hour_ms      INTEGER NOT NULL, -- the hour's start, ms since the epoch
    checks_total INTEGER NOT NULL,
    checks_ok    INTEGER NOT NULL,
    PRIMARY KEY (server_id, hour_ms)
) WITHOUT ROWID;
CREATE INDEX availability_hours_by_time ON availability_hours (hour_ms);

CREATE TABLE availability_days (
    server_id    INTEGER NOT NULL REFERENCES servers (id),
    day_ms       INTEGER NOT NULL, -- the UTC day's start
    checks_total INTEGER NOT NULL,
    checks_ok    INTEGER NOT NULL,
    PRIMARY KEY (server_id, day_ms)
) WITHOUT ROWID;
CREATE INDEX availability_days_by_time ON availability_days (day_ms);

-- Every check ever stored per server, by its cause (`ok` for a successful one): the counters
-- of /metrics.
CREATE TABLE result_counts (
    server_id INTEGER NOT NULL REFERENCES servers (id),
    cause     TEXT    NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (server_id, cause)
) WITHOUT ROWID;

-- The newest checks of each server, for the overview's heartbeat bar without a query per
-- server: JSON, newest last, at most 60 (see ingest::recent).
ALTER TABLE servers ADD COLUMN recent_checks TEXT;

-- A databases made before this migration gets its rollups from what it holds.
INSERT INTO availability_hours (server_id, hour_ms, checks_total, checks_ok)
    SELECT server_id, started_at_ms - started_at_ms % 3600000, sum(checks_total), sum(checks_ok)
    FROM reports GROUP BY 1, 2;
INSERT INTO availability_days (server_id, day_ms, checks_total, checks_ok)
    SELECT server_id, started_at_ms - started_at_ms % 86400000, sum(checks_total), sum(checks_ok)
    FROM reports GROUP BY 1, 2;
INSERT INTO result_counts (server_id, cause, n)
    SELECT server_id, coalesce(cause, 'ok'), count(*) FROM results GROUP BY 1, 2;

-- Read-only links to one server's page, badge and summary, for the server's customer: only
-- the SHA-256 of the link's secret is stored, as for tokens.
CREATE TABLE share_links (
    id            INTEGER PRIMARY KEY,
    server_id     INTEGER NOT NULL REFERENCES servers (id),
    sha256        TEXT    NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);
CREATE INDEX share_links_by_server ON share_links (server_id);
