-- A counter of the reports stored for a server. A collector's writer keeps each server's state
-- in memory; when several collectors share one database (PostgreSQL), a writer that finds a
-- generation other than its copy's knows another one stored a report, and reads the state
-- again. SQLite has one writer, but both databases keep the same tables.
ALTER TABLE servers ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
