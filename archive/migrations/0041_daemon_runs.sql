-- The run ledger: one row per `cmord run` (the daemon). A run records its start (pid,
-- version), the moment it had stayed up long enough to count as healthy (up_at), and
-- its clean stop (stopped_at). A run without stopped_at that is not the one running
-- ended unclean: a panic, the OOM killer, kill -9, a fatal error, a power cut. What the
-- process could say before it died (a panic's message, the error that ended Run) is in
-- error. The daemon reads the runs before its own at start (daemon_crashed), and
-- `cmord alert --unit-failed` when systemd gave up restarting it (daemon_down).
-- Not part of the state chain: it records the process, not the archive's content.
CREATE TABLE daemon_runs (
    id          INTEGER PRIMARY KEY,
    started_at  TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    version     TEXT NOT NULL DEFAULT '',
    up_at       TEXT,
    stopped_at  TEXT,
    error       TEXT NOT NULL DEFAULT '',
    error_at    TEXT
);
