-- Mail outbox: each message is built once (fixed Message-ID) and stored as RFC 5322
-- bytes, so a resend after a crash is byte-identical and recipients' MUAs dedupe it.
CREATE TABLE mail_outbox (
    id              INTEGER PRIMARY KEY,
    dedup_key       TEXT NOT NULL UNIQUE,       -- e.g. digest:2025-10-26; the same key is never queued twice
    kind            TEXT NOT NULL,              -- digest | alert | test | ...
    message_id      TEXT NOT NULL,
    sender          TEXT NOT NULL,              -- envelope MAIL FROM
    recipients      TEXT NOT NULL,              -- envelope RCPT TO, newline-separated
    subject         TEXT NOT NULL DEFAULT '',
    eml             BLOB NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL,
    sent_at         TEXT,
    dead_letter     TEXT NOT NULL DEFAULT ''    -- path of the .eml copy written after many failures
);
CREATE INDEX mail_outbox_due ON mail_outbox (state, next_attempt_at);
