-- The compliance digest and urgent alerts: the digest ledger (our "nflog": one row per
-- digest queued, so the next one knows its period and a restart never sends the same
-- one twice), the deadlines computed per practice, and the urgent-alert groups mailed.

CREATE TABLE digests (
    id           INTEGER PRIMARY KEY,
    dedup_key    TEXT NOT NULL UNIQUE,      -- the mail outbox key, e.g. digest:2026-11-23
    period_start TEXT NOT NULL,             -- archive.TS; the previous digest's period_end
    period_end   TEXT NOT NULL,
    lang         TEXT NOT NULL DEFAULT 'it',
    subject      TEXT NOT NULL DEFAULT '',
    summary      TEXT NOT NULL DEFAULT '{}', -- JSON: counts shown in the summary
    created_at   TEXT NOT NULL
);
CREATE INDEX digests_end ON digests (period_end);

-- Every deadline of brief §2.3 per practice, recomputed by the deadlines job.
CREATE TABLE deadlines (
    practice_id INTEGER NOT NULL REFERENCES practices (id),
    kind        TEXT NOT NULL,              -- window_opening | window_closing | suspension_term_closing | refund_overdue | ack_overdue | no_answer
    due_on      TEXT NOT NULL,              -- ISO date (Europe/Rome civil date)
    computed_at TEXT NOT NULL,
    PRIMARY KEY (practice_id, kind)
);
CREATE INDEX deadlines_due ON deadlines (due_on);

-- Urgent alert mails: one row per (group, window) key, written with the outbox row's
-- key so that a restart never mails the same group twice in one window.
CREATE TABLE alert_groups (
    dedup_key     TEXT PRIMARY KEY,         -- alert:<group>:<window start>
    group_key     TEXT NOT NULL,
    exception_ids TEXT NOT NULL,            -- comma-separated
    sent_at       TEXT NOT NULL
);
