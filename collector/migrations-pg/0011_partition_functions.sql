-- A day's partition is made and dropped through these functions (see ingest/partitions.rs).
-- DDL takes no bind parameters; here the names arrive as values and `format('%I')` quotes
-- them, so the collector never splices a table name into a statement.
--
-- Never edit this file once committed: add 0012_*.sql.

CREATE FUNCTION causeway_create_partition(part text, parent text, from_ms bigint, to_ms bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES FROM (%s) TO (%s)',
                   part, parent, from_ms, to_ms);
END
$$;

CREATE FUNCTION causeway_drop_partition(part text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DROP TABLE IF EXISTS %I', part);
END
$$;
