-- Who may read (pages, the read API, /metrics): people with an account and a session, and
-- programs with a read token. Passwords are argon2id PHC strings; sessions and read tokens are
-- stored as the SHA-256 of their secret, as probe tokens are, so a copy of the database opens
-- nothing.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    password      TEXT    NOT NULL,
    -- 'admin' or 'viewer' (read-only).
    role          TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE sessions (
    sha256        TEXT    PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE read_tokens (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL,
    sha256        TEXT    NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);
