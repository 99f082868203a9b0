-- Resolver health: what each name server said about each canary's name, every cycle, and the
-- resolver conditions grouped from it. A resolver that refuses us while the canary answers
-- through the others is not an incident (availability measures the canary); it is a condition
-- of that resolver, with its own start, end and evidence.
--
-- Never edit this file once committed: add 0003_*.sql.

-- One row per name server asked for one canary of one server. `resolver` is the label as the
-- probe's config gives it (`system` or an address); `address` the name server asked (ip:port):
-- `system` stands for every server of resolv.conf, each its own row.
CREATE TABLE resolvers (
    id               INTEGER PRIMARY KEY,
    server_id        INTEGER NOT NULL REFERENCES servers (id),
    canary           TEXT    NOT NULL,
    resolver         TEXT    NOT NULL,
    address          TEXT    NOT NULL,
    -- The name last resolved (from the newest report by started_at_ms).
    name             TEXT    NOT NULL,
    first_seen_at_ms INTEGER NOT NULL,
    last_seen_at_ms  INTEGER NOT NULL,
    UNIQUE (server_id, canary, resolver, address)
);

-- One compact row per resolver per stored report: this table grows every cycle, so no JSON
-- here (the evidence is kept once per condition, in resolver_conditions).
CREATE TABLE resolver_observations (
    resolver_id   INTEGER NOT NULL REFERENCES resolvers (id),
    report_id     TEXT    NOT NULL REFERENCES reports (report_id),
    started_at_ms INTEGER NOT NULL,
    cause         TEXT,             -- NULL when the resolver was healthy
    outcome       TEXT    NOT NULL, -- ResolverOutcome::brief(): `A refused, AAAA refused`
    elapsed_ms    REAL              -- the slowest query; NULL without queries
);
-- Health over a window counts a resolver's observations by cause since a time: the cause is in
-- the index so that the count never reads the table.
CREATE INDEX resolver_observations_by_resolver_time
    ON resolver_observations (resolver_id, started_at_ms, cause);
CREATE INDEX resolver_observations_by_report ON resolver_observations (report_id);

-- Consecutive observations of one resolver with the same cause, like incidents for a server.
CREATE TABLE resolver_conditions (
    id              INTEGER PRIMARY KEY,
    resolver_id     INTEGER NOT NULL REFERENCES resolvers (id),
    cause           TEXT    NOT NULL,
    started_at_ms   INTEGER NOT NULL,
    last_seen_at_ms INTEGER NOT NULL,
    ended_at_ms     INTEGER,          -- NULL while open
    observations    INTEGER NOT NULL,
    explanation     TEXT    NOT NULL, -- of the first observation
    evidence        TEXT    NOT NULL, -- JSON ResolverOutcome, the first observation
    last_evidence   TEXT    NOT NULL  -- JSON ResolverOutcome, the latest observation
);
CREATE INDEX resolver_conditions_by_resolver_time
    ON resolver_conditions (resolver_id, started_at_ms);
-- At most one open condition per resolver: the grouping logic relies on it.
CREATE UNIQUE INDEX resolver_conditions_one_open
    ON resolver_conditions (resolver_id) WHERE ended_at_ms IS NULL;
