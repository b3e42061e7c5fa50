-- Schedule ledger: one row per job slot (the slot's UTC instant), so a slot runs once
-- across DST changes and restarts, and missed or overlapping slots are on record.
CREATE TABLE schedule_runs (
    job         TEXT NOT NULL,
    slot_utc    TEXT NOT NULL,                  -- archive.TS of the slot instant
    state       TEXT NOT NULL CHECK (state IN ('running', 'ok', 'failed', 'skipped')),
    manual      INTEGER NOT NULL DEFAULT 0,     -- 1 = RunNow / CLI, not a scheduled slot
    started_at  TEXT,
    finished_at TEXT,
    error       TEXT NOT NULL DEFAULT '',       -- failure message or skip reason
    PRIMARY KEY (job, slot_utc)
);
CREATE INDEX schedule_runs_state ON schedule_runs (state);
