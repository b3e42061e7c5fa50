-- Core index: blobs, logical files and their versions, provenance, the hash-chained
-- audit log, exceptions, outbound deliveries and the inbound SFTP fetch ledger.

CREATE TABLE blobs (
    hash       TEXT PRIMARY KEY,            -- SHA-256, lower-case hex
    size       INTEGER NOT NULL,
    created_at TEXT NOT NULL
);

-- One row per version of a logical file. A logical file is (source, name); a
-- re-delivery with new content is a new version, identical content is recognised.
CREATE TABLE files (
    id           INTEGER PRIMARY KEY,
    source       TEXT NOT NULL,             -- folder:<name> | sftp:<endpoint> | built | export | digest | cli
    name         TEXT NOT NULL,
    direction    TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    kind         TEXT NOT NULL,             -- input kind, flow key, or 'unknown'
    hash         TEXT NOT NULL REFERENCES blobs (hash),
    size         INTEGER NOT NULL,
    version      INTEGER NOT NULL,
    state        TEXT NOT NULL,             -- received | processed | rejected | duplicate | built | published
    reason       TEXT NOT NULL DEFAULT '',
    duplicate_of INTEGER REFERENCES files (id),
    received_at  TEXT NOT NULL,
    processed_at TEXT,
    meta         TEXT NOT NULL DEFAULT '{}', -- JSON: remote path, rows, findings count...
    UNIQUE (source, name, version)
);
CREATE INDEX files_hash ON files (hash);
CREATE INDEX files_kind ON files (kind, received_at);
CREATE INDEX files_received ON files (received_at);

-- Which inputs a built or exported file came from.
CREATE TABLE provenance (
    output_id INTEGER NOT NULL REFERENCES files (id),
    input_id  INTEGER NOT NULL REFERENCES files (id),
    PRIMARY KEY (output_id, input_id)
);
CREATE INDEX provenance_input ON provenance (input_id);

-- Append-only audit log; each row carries SHA-256(prev_hash || row) so that any edit,
-- deletion or reordering is detected by `archive verify`.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    type        TEXT NOT NULL,
    file_id     INTEGER NOT NULL DEFAULT 0,
    practice_id INTEGER NOT NULL DEFAULT 0,
    actor       TEXT NOT NULL DEFAULT '',
    detail      TEXT NOT NULL DEFAULT '',
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX events_file ON events (file_id) WHERE file_id <> 0;
CREATE INDEX events_practice ON events (practice_id) WHERE practice_id <> 0;
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

-- Things a person must look at. A repeat (same fingerprint) bumps count and last_seen.
CREATE TABLE exceptions (
    id          INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    severity    TEXT NOT NULL CHECK (severity IN ('urgent', 'high', 'normal', 'low')),
    owner       TEXT NOT NULL,              -- operator | compliance | sysadmin
    file_id     INTEGER NOT NULL DEFAULT 0,
    line        INTEGER NOT NULL DEFAULT 0,
    field       TEXT NOT NULL DEFAULT '',
    rule        TEXT NOT NULL DEFAULT '',
    value       TEXT NOT NULL DEFAULT '',
    practice_id INTEGER NOT NULL DEFAULT 0,
    subject     TEXT NOT NULL DEFAULT '',   -- endpoint, folder, job...
    message     TEXT NOT NULL,
    action      TEXT NOT NULL DEFAULT '',   -- what the person is expected to do
    due_on      TEXT NOT NULL DEFAULT '',   -- ISO date of the deadline it concerns
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    count       INTEGER NOT NULL DEFAULT 1,
    resolved_at TEXT,
    resolution  TEXT NOT NULL DEFAULT '',
    resolved_by TEXT NOT NULL DEFAULT '',
    alerted_at  TEXT                        -- last urgent mail about it
);
CREATE INDEX exceptions_open ON exceptions (severity, kind) WHERE resolved_at IS NULL;
CREATE INDEX exceptions_practice ON exceptions (practice_id) WHERE practice_id <> 0;

-- Outbound publication of a file to an SFTP endpoint or a local folder.
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    file_id         INTEGER NOT NULL REFERENCES files (id),
    target          TEXT NOT NULL,          -- sftp:<endpoint> | dir:<path>
    remote_dir      TEXT NOT NULL,
    remote_name     TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    next_attempt_at TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    delivered_at    TEXT,
    UNIQUE (target, remote_dir, remote_name)
);
CREATE INDEX deliveries_pending ON deliveries (next_attempt_at) WHERE state = 'pending';

-- Inbound SFTP: what was fetched, so a restart fetches nothing twice.
CREATE TABLE sftp_fetched (
    endpoint     TEXT NOT NULL,
    remote_path  TEXT NOT NULL,
    size         INTEGER NOT NULL,
    mtime        TEXT NOT NULL,
    file_id      INTEGER NOT NULL REFERENCES files (id),
    fetched_at   TEXT NOT NULL,
    completed_at TEXT,                      -- completion policy applied (move/delete)
    PRIMARY KEY (endpoint, remote_path, size, mtime)
);
