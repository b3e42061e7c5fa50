-- A practice's case (invoices, spend, computation audit: about 1.5 KB of JSON, four
-- fifths of the row) moves into a table of its own, written when the case changes.
-- The practice row keeps the columns that change with its state: a build that moves
-- 333,334 practices from READY to SENT rewrote two rows per 4 KiB page (the page is
-- written to the WAL, then to the database) and now rewrites about twelve.
-- practices.data is '' for a case stored here, '{}' for a practice without a case.
-- The state chain hashes a practice with its case from here under the column name
-- data, so a row's hash is what it was before this migration (the empty column is
-- left out of the hash): the move changes no recorded hash.
CREATE TABLE practice_data (
    id   INTEGER PRIMARY KEY,   -- practices.id (no foreign key: a practice deleted outside cmord stays reportable)
    data TEXT NOT NULL
);
INSERT INTO practice_data (id, data) SELECT id, data FROM practices WHERE data NOT IN ('', '{}');
UPDATE practices SET data = '' WHERE data NOT IN ('', '{}');
