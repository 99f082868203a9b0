-- Rollups keyed by time first, then by server (or resolver).
--
-- Every report adds to its server's current minute, hour and day, and to its resolvers'
-- current hour. Keyed (server, time), each of those rows sits among its server's older rows:
-- a batch of reports from 16 servers dirtied 16 leaf pages per table, each written whole to
-- the WAL at commit (4 KiB for a 30-byte row; counted from the WAL frames of a load, by the
-- page numbers in their headers: the rollups were a third of all frames). Keyed (time,
-- server), the current bucket of every server is on the same page or two.
--
-- Reads by server go through an index of (server, time). It holds keys only, so adding to a
-- count does not touch it: it gains an entry once per bucket, not once per report. The
-- overview's sums over a window (`WHERE hour_ms >= ? GROUP BY server_id`) read the table
-- itself now, in time order, all its columns there: the covering `*_by_time` indexes of 0005
-- and 0008, which every report rewrote, are gone with the old tables.
--
-- The columns keep their order (migrate-to copies tables column by column).
--
-- Never edit this file once committed: add 0013_*.sql.

CREATE TABLE availability_minutes_v12 (
    server_id    INTEGER NOT NULL REFERENCES servers (id),
    minute_ms    INTEGER NOT NULL,
    checks_total INTEGER NOT NULL,
    checks_ok    INTEGER NOT NULL,
    PRIMARY KEY (minute_ms, server_id)
) WITHOUT ROWID;
INSERT INTO availability_minutes_v12 SELECT * FROM availability_minutes;
DROP TABLE availability_minutes;
ALTER TABLE availability_minutes_v12 RENAME TO availability_minutes;
CREATE INDEX availability_minutes_by_server ON availability_minutes (server_id, minute_ms);

CREATE TABLE availability_hours_v12 (
    server_id    INTEGER NOT NULL REFERENCES servers (id),
    hour_ms      INTEGER NOT NULL,
    checks_total INTEGER NOT NULL,
    checks_ok    INTEGER NOT NULL,
    PRIMARY KEY (hour_ms, server_id)
) WITHOUT ROWID;
INSERT INTO availability_hours_v12 SELECT * FROM availability_hours;
DROP TABLE availability_hours;
ALTER TABLE availability_hours_v12 RENAME TO availability_hours;
CREATE INDEX availability_hours_by_server ON availability_hours (server_id, hour_ms);

CREATE TABLE availability_days_v12 (
    server_id    INTEGER NOT NULL REFERENCES servers (id),
    day_ms       INTEGER NOT NULL,
    checks_total INTEGER NOT NULL,
    checks_ok    INTEGER NOT NULL,
    PRIMARY KEY (day_ms, server_id)
) WITHOUT ROWID;
INSERT INTO availability_days_v12 SELECT * FROM availability_days;
DROP TABLE availability_days;
ALTER TABLE availability_days_v12 RENAME TO availability_days;
CREATE INDEX availability_days_by_server ON availability_days (server_id, day_ms);

CREATE TABLE resolver_hours_v12 (
    resolver_id INTEGER NOT NULL REFERENCES resolvers (id),
    hour_ms     INTEGER NOT NULL,
    cause       TEXT    NOT NULL,
    n           INTEGER NOT NULL,
    last_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (hour_ms, resolver_id, cause)
) WITHOUT ROWID;
INSERT INTO resolver_hours_v12 SELECT * FROM resolver_hours;
DROP TABLE resolver_hours;
ALTER TABLE resolver_hours_v12 RENAME TO resolver_hours;
CREATE INDEX resolver_hours_by_resolver ON resolver_hours (resolver_id, hour_ms);
