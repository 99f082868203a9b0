-- Causeway collector, first schema. Never edit this file once committed: add 0002_*.sql.
--
-- Times are milliseconds since the Unix epoch (INTEGER). Servers are referenced by an integer
-- id so that a rename (later) touches one row. Cause ids are the stable snake_case ids of
-- causeway_schema::Cause.

CREATE TABLE servers (
    id                  INTEGER PRIMARY KEY,
    name                TEXT    NOT NULL UNIQUE,
    created_at_ms       INTEGER NOT NULL,
    -- From the newest report (by started_at_ms); NULL until the first report.
    last_report_id      TEXT,
    last_started_at_ms  INTEGER,
    interval_s          INTEGER,
    probe_host          TEXT,
    probe_version       TEXT,
    spool_queued        INTEGER NOT NULL DEFAULT 0,
    spool_dropped_total INTEGER NOT NULL DEFAULT 0,
    -- When the collector last accepted any report of this server (old replays included).
    last_received_at_ms INTEGER
);

-- Only the SHA-256 of a token is stored: a copy of the database does not let anyone report.
CREATE TABLE tokens (
    id            INTEGER PRIMARY KEY,
    server_id     INTEGER NOT NULL REFERENCES servers (id),
    sha256        TEXT    NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);
CREATE INDEX tokens_by_server ON tokens (server_id);

CREATE TABLE reports (
    report_id      TEXT    PRIMARY KEY,
    server_id      INTEGER NOT NULL REFERENCES servers (id),
    started_at_ms  INTEGER NOT NULL,
    received_at_ms INTEGER NOT NULL,
    probe_host     TEXT    NOT NULL,
    probe_version  TEXT    NOT NULL,
    checks_total   INTEGER NOT NULL,
    checks_ok      INTEGER NOT NULL
) WITHOUT ROWID;
-- Availability windows sum the counts of a server's reports since a time: covering index.
CREATE INDEX reports_by_server_time ON reports (server_id, started_at_ms, checks_ok, checks_total);

CREATE TABLE results (
    id              INTEGER PRIMARY KEY,
    report_id       TEXT    NOT NULL REFERENCES reports (report_id),
    server_id       INTEGER NOT NULL REFERENCES servers (id),
    canary          TEXT    NOT NULL,
    url             TEXT    NOT NULL,
    address         TEXT,
    started_at_ms   INTEGER NOT NULL,
    ok              INTEGER NOT NULL CHECK (ok IN (0, 1)),
    status          INTEGER,
    cause           TEXT,             -- NULL for a successful check
    contributing    TEXT,             -- JSON array of cause ids, NULL when none
    explanation     TEXT,
    failure_kind    TEXT,
    failure_message TEXT,
    resolve_ms      REAL,
    connect_ms      REAL,
    tls_ms          REAL,
    first_byte_ms   REAL,
    total_ms        REAL    NOT NULL,
    evidence        TEXT              -- JSON, failed checks only
);
CREATE INDEX results_by_server_time ON results (server_id, started_at_ms);
CREATE INDEX results_by_report ON results (report_id);

-- Consecutive failures of one server with the same primary cause.
CREATE TABLE incidents (
    id                 INTEGER PRIMARY KEY,
    server_id          INTEGER NOT NULL REFERENCES servers (id),
    cause              TEXT    NOT NULL,
    started_at_ms      INTEGER NOT NULL,
    last_failure_at_ms INTEGER NOT NULL,
    ended_at_ms        INTEGER,          -- NULL while open
    failed_checks      INTEGER NOT NULL,
    first_result_id    INTEGER NOT NULL REFERENCES results (id),
    last_result_id     INTEGER NOT NULL REFERENCES results (id),
    explanation        TEXT    NOT NULL
);
CREATE INDEX incidents_by_server_time ON incidents (server_id, started_at_ms);
-- At most one open incident per server: the grouping logic relies on it.
CREATE UNIQUE INDEX incidents_one_open ON incidents (server_id) WHERE ended_at_ms IS NULL;
