-- The build's history row of a request sent under its practice's own CP_UTENTE (a
-- REQ; practice_history.link 3) is no longer written (issue 16): per practice it was
-- a history row, its two index entries and its state chain entry, about 150 bytes,
-- to say what request_state says once the build marks the request sent (its flow,
-- file and time). What request_state does not hold is stored in the same UPDATE:
-- hist_after, the largest practice_history id when the request was built (where the
-- derived row sorts among its practice's rows: after every row up to it, before every
-- row written later; NOT NULL marks a request whose history row is derived), and the
-- row's from and to states and the state its practice moves to once the file is
-- delivered (hist_moves, NULL for none), as the build decided them (never read again
-- from the catalog). archive.PracticeHistory reads such a request as the row it
-- stood for ("<flow> <CP_UTENTE> written into <file>[; <state> once <file> is
-- delivered]", archive.BuildNote); practice_links as its built link. The practice's
-- hash in the state chain covers these columns and the request's flow, file and time
-- (chain side column built_requests), and the build rewrites the practice in the
-- same transaction: a request_state row edited, moved or deleted is reported as its
-- practice changed. Requests built before keep their link-3 history rows and NULL
-- here, which the practice's hash leaves out: no recorded hash changes.
ALTER TABLE request_state ADD COLUMN hist_after INTEGER;
ALTER TABLE request_state ADD COLUMN hist_from TEXT;
ALTER TABLE request_state ADD COLUMN hist_to TEXT;
ALTER TABLE request_state ADD COLUMN hist_moves TEXT;
-- The practices a file is the build of, for the derived links (receipts, publication).
CREATE INDEX request_state_built ON request_state (file_id) WHERE hist_after IS NOT NULL;
DROP VIEW practice_links;
CREATE VIEW practice_links (practice_id, file_id, relation, line) AS
    SELECT practice_id, file_id, relation, line FROM practice_files
    UNION ALL
    SELECT practice_id, file_id, CASE WHEN link IN (1, 4) THEN 'input' ELSE 'built' END, line
    FROM practice_history WHERE link <> 0
    UNION ALL
    SELECT r.practice_id, s.file_id, 'built', 0
    FROM request_state s JOIN request_rows r ON r.id = s.id WHERE s.hist_after IS NOT NULL;
