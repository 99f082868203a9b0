-- As SQLite's 0019: the certificates each https canary served.
--
-- Never edit this file once committed: add 0013_*.sql.

CREATE TABLE tls_certificates (
    canary_id          BIGINT NOT NULL REFERENCES canaries (id),
    sha256             TEXT   NOT NULL,
    server_id          BIGINT NOT NULL REFERENCES servers (id),
    subject            TEXT   NOT NULL,
    not_after_ms       BIGINT NOT NULL,
    chain_not_after_ms BIGINT NOT NULL,
    first_seen_at_ms   BIGINT NOT NULL,
    last_seen_at_ms    BIGINT NOT NULL,
    PRIMARY KEY (canary_id, sha256)
);
CREATE INDEX tls_certificates_by_server ON tls_certificates (server_id, last_seen_at_ms);
