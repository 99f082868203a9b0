-- Alerts (src/alerts): what the alerter has raised, and the notifications it owes.
--
-- alert_state: one row per thing that raised an alert (an incident, a server gone silent),
-- written in the same transaction as the notifications it raised, so a restart neither
-- repeats a message nor forgets one.
--
-- Never edit this file once committed: add 0016_*.sql.

CREATE TABLE alert_state (
    -- 'incident:<id>' or 'stale:<server id>:<last report received, ms>'.
    key                 TEXT    PRIMARY KEY,
    server_id           INTEGER NOT NULL REFERENCES servers (id),
    -- The rule that matched and the channels its first message went to (comma-separated):
    -- the end of the alert goes to the same ones.
    rule                TEXT    NOT NULL,
    channels            TEXT    NOT NULL,
    raised_at_ms        INTEGER NOT NULL,
    last_reminder_at_ms INTEGER,
    -- When the end was sent (recovered, reporting again) or superseded (the cause changed).
    ended_at_ms         INTEGER
);
CREATE INDEX alert_state_open ON alert_state (ended_at_ms);

-- The outbox: one row per message and channel, delivered with retries by the sender.
CREATE TABLE notifications (
    id                 INTEGER PRIMARY KEY,
    -- '<alert key>/<event>/<channel>', also sent as the idempotency key where a channel
    -- takes one.
    key                TEXT    NOT NULL UNIQUE,
    event              TEXT    NOT NULL,
    server             TEXT    NOT NULL,
    channel            TEXT    NOT NULL,
    -- The message (alerts::Message) as JSON; each channel renders it when sending.
    message            TEXT    NOT NULL,
    created_at_ms      INTEGER NOT NULL,
    -- 'pending', 'delivered' or 'failed' (gave up after the retry bound).
    status             TEXT    NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms INTEGER NOT NULL,
    last_error         TEXT,
    delivered_at_ms    INTEGER
);
CREATE INDEX notifications_due ON notifications (status, next_attempt_at_ms);
