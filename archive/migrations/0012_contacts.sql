-- Reachability of each SFTP endpoint, kept across restarts and `run --once` cycles so
-- that "unreachable for longer than unreachable_alert_after" is measured from the first
-- failure after the last success, not from the process start.
CREATE TABLE endpoint_contacts (
    endpoint      TEXT PRIMARY KEY,
    last_ok       TEXT,
    failing_since TEXT
);
