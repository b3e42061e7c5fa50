-- A history row may stand for a practice's link to its file (issue 16): the bulk
-- path's creation row (the extract and its first line: an "input" link) and the
-- build's row (the built file: a "built" link) said again, per practice, what
-- practice_files said. link says which link the row stands for (0: none, its links
-- are in practice_files; 1: input; 2: built; 3: built, by a request whose code is
-- its practice's CP_UTENTE; 4: input, of a case read from an extract), and such a
-- row's note names its file as {file}, rendered with the name of file_id when read
-- (files' names do not change, and files and practice_history are in the state
-- chain: the link and the text a person reads are as tamper-evident as the row).
-- A row of link 3 holds in its note only the state the practice moves to once the
-- file is delivered (or nothing): the rest of its text, "<flow> <CP_UTENTE> written
-- into {file}[; <state> once {file} is delivered]", is rendered from the row, its
-- practice's code (chained, never changed) and its file (archive.historyNote). A row
-- of link 4 holds what follows "case read from {file} lines " in its note. A row
-- written before keeps link 0, which the chain's hash leaves out: no recorded hash
-- changes.
ALTER TABLE practice_history ADD COLUMN link INTEGER NOT NULL DEFAULT 0;
-- The practices a file is the input or the build of (receipts, publication).
CREATE INDEX practice_history_link ON practice_history (file_id) WHERE link <> 0;
-- Every link, stored or stood for by a history row: what readers read. UNION ALL,
-- not UNION: SQLite pushes a reader's WHERE (a practice, a file) into each arm only
-- then, so each arm is an index search. The writers write a link one way or the
-- other, never both; the readers read the view as a set all the same (DISTINCT, IN).
CREATE VIEW practice_links (practice_id, file_id, relation, line) AS
    SELECT practice_id, file_id, relation, line FROM practice_files
    UNION ALL
    SELECT practice_id, file_id, CASE WHEN link IN (1, 4) THEN 'input' ELSE 'built' END, line
    FROM practice_history WHERE link <> 0;
