-- Compact storage: what a healthy check costs on disk, and what pruning needs.
--
-- - A report is its UUID, 16 bytes, kept for idempotency; nothing else of it is stored per
--   report (the server's row has the newest report's figures, the rollups the counts).
-- - Results carry their report's UUID and refer to their canary (name and URL, stored once in
--   `canaries`); timings are whole microseconds (a REAL is 8 bytes, these 2 to 4). What only a
--   failed check has (cause, explanation, failure, evidence) is in `failures`, so a healthy
--   check's row has no empty columns.
-- - Incidents no longer hold a foreign key to results: a failed check's evidence is pruned
--   after --retain-evidence while the incident itself is kept with the hourly rollups.
-- - Resolver observations become changes plus hourly counts: one row when a resolver's answer
--   changes, one count per resolver, hour and cause.
-- - Host observations are kept when something changes (boot, causes, warnings) or once a
--   minute, refer to their report by its UUID, and keep load and pressure figures as whole
--   hundredths (as /proc gives them) instead of REALs.
-- - Availability per minute, kept a day, so that windows of any length are summed from
--   rollups (minutes, hours, days) and never from raw checks.
--
-- Never edit this file once committed: add 0009_*.sql.

CREATE TABLE canaries (
    id        INTEGER PRIMARY KEY,
    server_id INTEGER NOT NULL REFERENCES servers (id),
    name      TEXT    NOT NULL,
    url       TEXT    NOT NULL,
    UNIQUE (server_id, name, url)
);

CREATE TABLE reports_v8 (
    uuid BLOB PRIMARY KEY -- the report id, 16 bytes
) WITHOUT ROWID;
INSERT INTO reports_v8 (uuid) SELECT unhex(replace(report_id, '-', '')) FROM reports;

INSERT INTO canaries (server_id, name, url)
    SELECT DISTINCT server_id, canary, url FROM results;

CREATE TABLE results_v8 (
    id            INTEGER PRIMARY KEY,
    report_uuid   BLOB    NOT NULL,   -- reports.uuid; the report may be pruned before
    server_id     INTEGER NOT NULL REFERENCES servers (id),
    canary_id     INTEGER NOT NULL REFERENCES canaries (id),
    address       TEXT,
    started_at_ms INTEGER NOT NULL,
    ok            INTEGER NOT NULL CHECK (ok IN (0, 1)),
    status        INTEGER,
    total_us      INTEGER NOT NULL,
    resolve_us    INTEGER,
    connect_us    INTEGER,
    tls_us        INTEGER,
    first_byte_us INTEGER
);
INSERT INTO results_v8 (id, report_uuid, server_id, canary_id, address, started_at_ms, ok,
                        status, total_us, resolve_us, connect_us, tls_us, first_byte_us)
    SELECT r.id, unhex(replace(r.report_id, '-', '')), r.server_id, c.id, r.address,
           r.started_at_ms, r.ok, r.status,
           CAST(round(r.total_ms * 1000) AS INTEGER), CAST(round(r.resolve_ms * 1000) AS INTEGER),
           CAST(round(r.connect_ms * 1000) AS INTEGER), CAST(round(r.tls_ms * 1000) AS INTEGER),
           CAST(round(r.first_byte_ms * 1000) AS INTEGER)
    FROM results r
    JOIN canaries c ON c.server_id = r.server_id AND c.name = r.canary AND c.url = r.url;

-- What a failed check has beyond a healthy one's row; deleted with its result.
CREATE TABLE failures (
    result_id       INTEGER PRIMARY KEY, -- results.id
    cause           TEXT    NOT NULL,
    contributing    TEXT,                -- JSON array of cause ids, NULL when none
    explanation     TEXT,
    failure_kind    TEXT,
    failure_message TEXT,
    evidence        TEXT                 -- JSON
);
INSERT INTO failures (result_id, cause, contributing, explanation, failure_kind,
                      failure_message, evidence)
    SELECT id, coalesce(cause, 'unknown'), contributing, explanation, failure_kind,
           failure_message, evidence
    FROM results WHERE ok = 0;

CREATE TABLE incidents_v8 (
    id                 INTEGER PRIMARY KEY,
    server_id          INTEGER NOT NULL REFERENCES servers (id),
    cause              TEXT    NOT NULL,
    started_at_ms      INTEGER NOT NULL,
    last_failure_at_ms INTEGER NOT NULL,
    ended_at_ms        INTEGER,          -- NULL while open
    failed_checks      INTEGER NOT NULL,
    first_result_id    INTEGER NOT NULL, -- results.id, until the evidence is pruned
    last_result_id     INTEGER NOT NULL,
    explanation        TEXT    NOT NULL
);
INSERT INTO incidents_v8 SELECT id, server_id, cause, started_at_ms, last_failure_at_ms,
    ended_at_ms, failed_checks, first_result_id, last_result_id, explanation FROM incidents;

CREATE TABLE host_observations_v8 (
    server_id        INTEGER NOT NULL REFERENCES servers (id),
    report_uuid      BLOB    NOT NULL, -- reports.uuid of the newest reading
    started_at_ms    INTEGER NOT NULL,
    boot_id          TEXT    NOT NULL,
    uptime_s         INTEGER NOT NULL,
    mem_total_kb     INTEGER,
    mem_available_kb INTEGER,
    slab_kb          INTEGER,
    s_unreclaim_kb   INTEGER,
    cpus             INTEGER,
    -- Hundredths: load averages and PSI percentages have two decimals in /proc.
    load1_c          INTEGER,
    load5_c          INTEGER,
    load15_c         INTEGER,
    runnable         INTEGER,
    cpu_some_c       INTEGER,
    memory_some_c    INTEGER,
    memory_full_c    INTEGER,
    io_some_c        INTEGER,
    io_full_c        INTEGER,
    causes           TEXT,
    warnings         TEXT
);
INSERT INTO host_observations_v8
    SELECT server_id, unhex(replace(report_id, '-', '')), started_at_ms, boot_id, uptime_s,
           mem_total_kb, mem_available_kb, slab_kb, s_unreclaim_kb, cpus,
           CAST(round(load1 * 100) AS INTEGER), CAST(round(load5 * 100) AS INTEGER),
           CAST(round(load15 * 100) AS INTEGER), runnable,
           CAST(round(cpu_some * 100) AS INTEGER), CAST(round(memory_some * 100) AS INTEGER),
           CAST(round(memory_full * 100) AS INTEGER), CAST(round(io_some * 100) AS INTEGER),
           CAST(round(io_full * 100) AS INTEGER), causes, warnings
    FROM host_observations;

-- A resolver's answer, when it changed: the first observation of each outcome in a row.
CREATE TABLE resolver_changes (
    resolver_id   INTEGER NOT NULL REFERENCES resolvers (id),
    started_at_ms INTEGER NOT NULL,
    cause         TEXT,             -- NULL when the resolver was healthy
    outcome       TEXT    NOT NULL, -- ResolverOutcome::brief()
    elapsed_ms    REAL
);
CREATE INDEX resolver_changes_by_resolver_time ON resolver_changes (resolver_id, started_at_ms);
-- Every observation, counted per resolver, UTC hour and cause ('' when healthy), with the
-- newest one's start: the resolver's last sighting, kept here because this row is written
-- with every observation anyway (`resolvers` is then written only when its name changes or
-- a minute has passed).
CREATE TABLE resolver_hours (
    resolver_id INTEGER NOT NULL REFERENCES resolvers (id),
    hour_ms     INTEGER NOT NULL,
    cause       TEXT    NOT NULL,
    n           INTEGER NOT NULL,
    last_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (resolver_id, hour_ms, cause)
) WITHOUT ROWID;
-- Each old observation is kept as a change (pruned with the raw checks), and counted.
INSERT INTO resolver_changes SELECT resolver_id, started_at_ms, cause, outcome, elapsed_ms
    FROM resolver_observations;
INSERT INTO resolver_hours
    SELECT resolver_id, started_at_ms - started_at_ms % 3600000, coalesce(cause, ''), count(*),
           max(started_at_ms)
    FROM resolver_observations GROUP BY 1, 2, 3;

CREATE TABLE availability_minutes (
    server_id    INTEGER NOT NULL REFERENCES servers (id),
    minute_ms    INTEGER NOT NULL,
    checks_total INTEGER NOT NULL,
    checks_ok    INTEGER NOT NULL,
    PRIMARY KEY (server_id, minute_ms)
) WITHOUT ROWID;
CREATE INDEX availability_minutes_by_time
    ON availability_minutes (minute_ms, server_id, checks_total, checks_ok);
INSERT INTO availability_minutes
    SELECT server_id, started_at_ms - started_at_ms % 60000, sum(checks_total), sum(checks_ok)
    FROM reports WHERE started_at_ms >= (SELECT max(started_at_ms) FROM reports) - 86400000
    GROUP BY 1, 2;

DROP TABLE resolver_observations;
DROP TABLE host_observations;
DROP TABLE incidents;
DROP TABLE results;
DROP TABLE reports;
ALTER TABLE reports_v8 RENAME TO reports;
ALTER TABLE results_v8 RENAME TO results;
ALTER TABLE incidents_v8 RENAME TO incidents;
ALTER TABLE host_observations_v8 RENAME TO host_observations;

CREATE INDEX results_by_server_time ON results (server_id, started_at_ms);
CREATE INDEX incidents_by_server_time ON incidents (server_id, started_at_ms);
CREATE UNIQUE INDEX incidents_one_open ON incidents (server_id) WHERE ended_at_ms IS NULL;
CREATE INDEX host_observations_by_server_time ON host_observations (server_id, started_at_ms);
