-- A big input file is committed in chunks of cases, not in one transaction: one
-- transaction of a million rows spills SQLite's page cache and holds the writer for
-- minutes. file_progress says how far a file's committed chunks reach, so that a
-- restart (kill -9, power loss, SIGTERM) continues after the last committed chunk
-- instead of doing anything twice; its counters and findings so far are kept with it,
-- so the file's final report is the same as if it had run in one go. The row is
-- deleted in the transaction that finishes the file.
CREATE TABLE file_progress (
    file_id INTEGER PRIMARY KEY REFERENCES files (id),
    line    INTEGER NOT NULL,             -- every input line <= line is accounted for
    state   TEXT NOT NULL DEFAULT '{}',   -- JSON counters of the handler
    updated_at TEXT NOT NULL
);
CREATE TABLE file_progress_findings (
    id      INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL REFERENCES files (id),
    finding TEXT NOT NULL                 -- JSON flows.Finding, in the order found
);
CREATE INDEX file_progress_findings_file ON file_progress_findings (file_id, id);
