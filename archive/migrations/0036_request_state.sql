-- A request's changing columns move into a narrow table of their own (issue 16, lever
-- E, as 0035 did for practices): the build marks every request of a file sent (state,
-- file, time), and an SII answer marks it answered. Each rewrote the whole request row
-- (its code, values, times: about 110 bytes, grown by the update, so its pages split
-- and were half full) for a state, a file and a time; now the build rewrites a row of
-- about 45 bytes.
--
-- request_state holds what the build writes (the flow, immutable, is here too so that
-- the (flow, state) index the build's page query reads stays one index);
-- request_rows (the old table, renamed: the foreign key of entrante_report_lines
-- follows) keeps the rest. request_rows.file_id stays, NULL: a column a foreign key
-- names cannot be dropped, and the request's file is request_state.file_id. requests
-- is a view joining them with the old table's columns, names and order: every reader
-- reads it as before. cmord writes the two tables; the view's INSTEAD OF triggers let
-- a person (or a test) still write requests itself. (Requests are not in the state
-- chain.)
ALTER TABLE requests RENAME TO request_rows;
CREATE TABLE request_state (
    id      INTEGER PRIMARY KEY,          -- request_rows.id
    flow    TEXT NOT NULL,                -- catalog key: REQ, ANN_REQ, SUSP_REQ, ...
    state   TEXT NOT NULL,                -- ready | sent | admitted | inadmissible | accepted | rejected | cancelled
    file_id INTEGER REFERENCES files (id),-- the flow file it was written into
    sent_at TEXT
);
INSERT INTO request_state (id, flow, state, file_id, sent_at) SELECT id, flow, state, file_id, sent_at FROM request_rows;
DROP INDEX requests_ready;
UPDATE request_rows SET file_id = NULL WHERE file_id IS NOT NULL;
ALTER TABLE request_rows DROP COLUMN flow;
ALTER TABLE request_rows DROP COLUMN state;
ALTER TABLE request_rows DROP COLUMN sent_at;
CREATE INDEX requests_ready ON request_state (flow, state);
CREATE VIEW requests (id, practice_id, flow, cp_utente, state, data, file_id, created_at, sent_at, answered_at, cause_code,
        motivation, payload) AS
    SELECT s.id, r.practice_id, s.flow, r.cp_utente, s.state, r.data, s.file_id, r.created_at, s.sent_at, r.answered_at,
        r.cause_code, r.motivation, r.payload
    FROM request_state s LEFT JOIN request_rows r ON r.id = s.id;
CREATE TRIGGER requests_insert INSTEAD OF INSERT ON requests
BEGIN
    INSERT INTO request_rows (id, practice_id, cp_utente, data, created_at, answered_at, cause_code, motivation, payload)
    VALUES (NEW.id, NEW.practice_id, NEW.cp_utente, coalesce(NEW.data, '{}'), NEW.created_at, NEW.answered_at,
        coalesce(NEW.cause_code, ''), coalesce(NEW.motivation, ''), coalesce(NEW.payload, ''));
    INSERT INTO request_state (id, flow, state, file_id, sent_at)
    VALUES (last_insert_rowid(), NEW.flow, NEW.state, NEW.file_id, NEW.sent_at);
END;
CREATE TRIGGER requests_update INSTEAD OF UPDATE ON requests
BEGIN
    UPDATE request_rows SET id = NEW.id, practice_id = NEW.practice_id, cp_utente = NEW.cp_utente, data = NEW.data,
        created_at = NEW.created_at, answered_at = NEW.answered_at, cause_code = NEW.cause_code, motivation = NEW.motivation,
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
