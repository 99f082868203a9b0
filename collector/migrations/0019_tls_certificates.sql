-- The certificates each https canary served (healthy checks carry their chain's fingerprints
-- and dates): one row per canary and leaf fingerprint, with when it was first and last seen.
-- A canary's rows after its first are the "new certificate" notes of the server's page; the
-- newest row's chain_not_after_ms is /metrics' earliest expiry.
--
-- Never edit this file once committed: add 0020_*.sql.

CREATE TABLE tls_certificates (
    canary_id          INTEGER NOT NULL REFERENCES canaries (id),
    sha256             TEXT    NOT NULL, -- the leaf's, lower-case hex
    server_id          INTEGER NOT NULL REFERENCES servers (id),
    subject            TEXT    NOT NULL, -- the leaf's
    not_after_ms       INTEGER NOT NULL, -- the leaf's
    chain_not_after_ms INTEGER NOT NULL, -- the earliest of the chain as last served
    first_seen_at_ms   INTEGER NOT NULL,
    last_seen_at_ms    INTEGER NOT NULL,
    PRIMARY KEY (canary_id, sha256)
);
CREATE INDEX tls_certificates_by_server ON tls_certificates (server_id, last_seen_at_ms);
