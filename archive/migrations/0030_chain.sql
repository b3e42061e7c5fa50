-- Tamper evidence over the whole state (docs/tamper.md). Every write transaction
-- that adds, changes or removes a row of files, practices or practice_history, or
-- appends an event, ends with one chain record: the SHA-256 of each such row as it
-- stands at commit (or "deleted"), the event log's head, and the hash of the
-- previous record. `cmord archive verify` replays the records and compares every
-- row with the last hash recorded for it; `cmord archive anchor` prints the head
-- for an external notary, and `verify --anchor` proves the chain still extends it.
-- The rows that existed before this migration are sealed by its first record
-- (written by the daemon right after the migration).
CREATE TABLE chain (
    seq        INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    event_id   INTEGER NOT NULL,          -- the event log's newest event at commit (0: none)
    event_hash TEXT NOT NULL,             -- its hash (genesis when none)
    rows       INTEGER NOT NULL,          -- entries in this record
    entries    BLOB NOT NULL,             -- per row: table tag (1 byte), rowid (uvarint), SHA-256 (32 bytes; zeros = deleted)
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE TRIGGER chain_no_update BEFORE UPDATE ON chain
BEGIN SELECT RAISE(ABORT, 'the chain is append-only'); END;
CREATE TRIGGER chain_no_delete BEFORE DELETE ON chain
BEGIN SELECT RAISE(ABORT, 'the chain is append-only'); END;
