-- Fewer bytes a practice in index.db (issue 16, seventh round): under WAL every byte
-- the handler and the build write is written at least twice (docs/benchmarks-uscente.md,
-- "Seventh round"). Nothing any reader sees changes:
--
-- * requests_ready indexes only the ready requests. It was (flow, state) over every
--   request: the handler inserted an entry a request, the build moved it from 'ready'
--   to 'sent', and the sent requests' entries, never searched (a practice's requests
--   are found by requests_practice), stayed for good. Every search of it names the
--   literal state 'ready' (the build's pages; Store.Requests adds it), which lets
--   SQLite use the partial index.
-- * A request created with its practice, in the same job at the same time (the
--   uscente.morosi handler's bulk path), stores '' in request_rows.created_at, and
--   the view requests reads it back as its practice's created_at. Its INSTEAD OF
--   triggers (a person writing requests by hand) store it the same way. Dropping the
--   view drops its triggers: they are created again as 0036 made them, but for that.
-- * A request the build marks sent at the time it archives the file it wrote stores
--   '' in request_state.sent_at, and the view reads it back as the file's received_at
--   (the files row is chained; a derived build row's time is read the same way where
--   the practice's hash and its history read it).
--
-- Two more stored forms need no schema change; cmord writes them once this migration
-- is applied (Store.rowsTrimmed), and reads both forms:
-- * a practice's creation history row written with its practice by that path stores
--   '' in practice_history.at, read back as the practice's created_at (the row's hash
--   in the state chain covers what is stored, the practice's covers created_at), and
--   then '' in its flow when that is its file's kind, read back as the kind (chained
--   with the file);
-- * a request whose derived build row (0037) records READY -> BUILT, moving to SENT
--   once delivered (every REQ of a billing extract) stores NULL in hist_from, hist_to
--   and hist_moves, read back as those three states (hist_from is never NULL in a row
--   with hist_after written before: a bound Go string).
DROP INDEX requests_ready;
CREATE INDEX requests_ready ON request_state (flow) WHERE state = 'ready';
DROP VIEW requests;
CREATE VIEW requests (id, practice_id, flow, cp_utente, state, data, file_id, created_at, sent_at, answered_at, cause_code,
        motivation, payload) AS
    SELECT s.id, r.practice_id, s.flow, r.cp_utente, s.state, r.data, s.file_id,
        CASE r.created_at WHEN '' THEN coalesce((SELECT p.created_at FROM practice_rows p WHERE p.id = r.practice_id), '')
            ELSE r.created_at END,
        CASE s.sent_at WHEN '' THEN (SELECT f.received_at FROM files f WHERE f.id = s.file_id) ELSE s.sent_at END,
        r.answered_at, r.cause_code, r.motivation, r.payload
    FROM request_state s LEFT JOIN request_rows r ON r.id = s.id;
CREATE TRIGGER requests_insert INSTEAD OF INSERT ON requests
BEGIN
    INSERT INTO request_rows (id, practice_id, cp_utente, data, created_at, answered_at, cause_code, motivation, payload)
    VALUES (NEW.id, NEW.practice_id, NEW.cp_utente, coalesce(NEW.data, '{}'),
        CASE WHEN NEW.created_at = (SELECT p.created_at FROM practice_rows p WHERE p.id = NEW.practice_id) THEN ''
            ELSE NEW.created_at END,
        NEW.answered_at, coalesce(NEW.cause_code, ''), coalesce(NEW.motivation, ''), coalesce(NEW.payload, ''));
    INSERT INTO request_state (id, flow, state, file_id, sent_at)
    VALUES (last_insert_rowid(), NEW.flow, NEW.state, NEW.file_id, NEW.sent_at);
END;
CREATE TRIGGER requests_update INSTEAD OF UPDATE ON requests
BEGIN
    UPDATE request_rows SET id = NEW.id, practice_id = NEW.practice_id, cp_utente = NEW.cp_utente, data = NEW.data,
        created_at = CASE WHEN NEW.created_at = (SELECT p.created_at FROM practice_rows p WHERE p.id = NEW.practice_id) THEN ''
            ELSE NEW.created_at END,
        answered_at = NEW.answered_at, cause_code = NEW.cause_code, motivation = NEW.motivation,
        payload = NEW.payload
    WHERE id = OLD.id;
    UPDATE request_state SET id = NEW.id, flow = NEW.flow, state = NEW.state, file_id = NEW.file_id, sent_at = NEW.sent_at
    WHERE id = OLD.id;
END;
CREATE TRIGGER requests_delete INSTEAD OF DELETE ON requests
BEGIN
    DELETE FROM request_state WHERE id = OLD.id;
    DELETE FROM request_rows WHERE id = OLD.id;
END;
