-- Maintenance windows (src/silences.rs), and read tokens that may also write (make and remove
-- silences): `read-token add NAME --write`.
--
-- Never edit this file once committed: add 0017_*.sql.

ALTER TABLE read_tokens ADD COLUMN can_write INTEGER NOT NULL DEFAULT 0;

CREATE TABLE silences (
    id            INTEGER PRIMARY KEY,
    -- A server name or glob.
    servers       TEXT    NOT NULL,
    reason        TEXT    NOT NULL,
    -- The read token's name or the user's.
    created_by    TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    starts_at_ms  INTEGER NOT NULL,
    ends_at_ms    INTEGER NOT NULL,
    removed_at_ms INTEGER
);
CREATE INDEX silences_by_end ON silences (ends_at_ms);
