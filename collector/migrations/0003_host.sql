-- Host health: what each probe read of its own host every cycle (memory, pressure, boot), and
-- the host conditions grouped from it. An OOM kill or a kernel memory leak on the probe's host
-- while the canary answers is not an incident (availability measures the canary); it is a
-- condition of the host, with its own start, end and evidence.
--
-- Never edit this file once committed: add 0004_*.sql.

-- One compact row per stored report that carries the host: this table grows every cycle, so
-- no JSON here (the evidence is kept once per condition, in host_conditions). Reports of
-- probes that predate host evidence have no row. A reading the probe could not take is NULL:
-- the memory columns come from the cycle's latest /proc/meminfo sample (mem_total_kb is NULL
-- without one), the others from its pressure figures (cpus is NULL without them).
CREATE TABLE host_observations (
    server_id        INTEGER NOT NULL REFERENCES servers (id),
    report_id        TEXT    NOT NULL UNIQUE REFERENCES reports (report_id),
    started_at_ms    INTEGER NOT NULL,
    boot_id          TEXT    NOT NULL, -- empty when the probe could not read it
    uptime_s         INTEGER NOT NULL,
    mem_total_kb     INTEGER,
    mem_available_kb INTEGER,
    slab_kb          INTEGER,
    s_unreclaim_kb   INTEGER,
    cpus             INTEGER,
    load1            REAL,
    load5            REAL,
    load15           REAL,
    runnable         INTEGER,
    cpu_some         REAL,             -- PSI avg10, percent
    memory_some      REAL,
    memory_full      REAL,
    io_some          REAL,
    io_full          REAL,
    causes           TEXT,             -- the cycle's condition cause ids, space-separated; NULL
                                       -- when the probe found nothing wrong
    warnings         TEXT              -- what the probe could not read (no CAP_SYSLOG for the
                                       -- kernel log, ...), one per line; NULL when nothing
);
-- The latest readings and the readings over a window are a server's rows from a time.
CREATE INDEX host_observations_by_server_time ON host_observations (server_id, started_at_ms);

-- Consecutive reports of one server's probe finding the same thing wrong with its host, like
-- incidents for a server. Several causes can be open at once (a leak that led to OOM kills).
CREATE TABLE host_conditions (
    id               INTEGER PRIMARY KEY,
    server_id        INTEGER NOT NULL REFERENCES servers (id),
    cause            TEXT    NOT NULL,
    started_at_ms    INTEGER NOT NULL,
    last_seen_at_ms  INTEGER NOT NULL,
    ended_at_ms      INTEGER,          -- NULL while open
    observations     INTEGER NOT NULL,
    explanation      TEXT    NOT NULL, -- of the first observation
    -- Of the latest: its figures move while the condition lasts (SUnreclaim grows, kills add
    -- up), and this one is what the host looks like now.
    last_explanation TEXT    NOT NULL,
    evidence         TEXT    NOT NULL, -- JSON HostCondition, the first observation
    last_evidence    TEXT    NOT NULL  -- JSON HostCondition, the latest observation
);
CREATE INDEX host_conditions_by_server_time ON host_conditions (server_id, started_at_ms);
-- At most one open condition per server and cause: the grouping logic relies on it.
CREATE UNIQUE INDEX host_conditions_one_open
    ON host_conditions (server_id, cause) WHERE ended_at_ms IS NULL;
