-- A practice's changing columns move into a narrow table of their own (issue 16,
-- lever E): the build moves every practice of a file from READY to BUILT and records
-- the day its request was sent, and delivery moves it on to SENT. Each of those
-- rewrote the whole practice row (about 330 bytes: codes, names, amounts, windows,
-- three timestamps) for a state, a day and two times; every 8 KiB page of the table
-- went to the WAL and back to the database, twice per practice over its life. Here
-- they rewrite a row of about 90 bytes.
--
-- practice_state holds what a state change writes; practice_rows (the old table,
-- renamed: the foreign keys that name it follow) keeps the rest, the role too (the
-- lookups by point or customer filter on it, and the planner keeps to their indexes
-- only when it is on the same side). practices is a view joining them with the old
-- table's columns, names and order: every reader reads it as before, and the state
-- chain hashes a practice from it, so no recorded hash changes. The view's id is the
-- state's, so that a state filter walks its index in id order; its join is a LEFT
-- JOIN, so that a query reading only the state's columns skips the rest. cmord writes
-- the two tables; the view's INSTEAD OF triggers let a person (or a test) still write
-- practices itself, as with the table, which archive verify then reports as written
-- outside cmord.
ALTER TABLE practices RENAME TO practice_rows;
CREATE TABLE practice_state (
    id           INTEGER PRIMARY KEY,     -- practice_rows.id
    state        TEXT NOT NULL,
    state_since  TEXT NOT NULL,
    request_date TEXT NOT NULL DEFAULT '', -- when the request was sent (ISO)
    updated_at   TEXT NOT NULL
);
INSERT INTO practice_state (id, state, state_since, request_date, updated_at)
    SELECT id, state, state_since, request_date, updated_at FROM practice_rows;
DROP INDEX practices_state;
DROP INDEX practices_request;
ALTER TABLE practice_rows DROP COLUMN state;
ALTER TABLE practice_rows DROP COLUMN state_since;
ALTER TABLE practice_rows DROP COLUMN request_date;
ALTER TABLE practice_rows DROP COLUMN updated_at;
CREATE INDEX practices_state ON practice_state (state);
CREATE INDEX practices_request ON practice_state (request_date) WHERE request_date <> '';
CREATE VIEW practices (id, case_key, role, sector, company_piva, cp_utente, cp_gestore, point, customer_id, customer_name,
        switch_date, state, state_since, credit_cents, estimate_cents, previous_cents, cmor_cents, charged_cents,
        collected_cents, cause_code, motivation, window_open, window_close, suspension_term, request_date, answer_date,
        linked_id, data, created_at, updated_at) AS
    SELECT s.id, r.case_key, r.role, r.sector, r.company_piva, r.cp_utente, r.cp_gestore, r.point, r.customer_id, r.customer_name,
        r.switch_date, s.state, s.state_since, r.credit_cents, r.estimate_cents, r.previous_cents, r.cmor_cents, r.charged_cents,
        r.collected_cents, r.cause_code, r.motivation, r.window_open, r.window_close, r.suspension_term, s.request_date, r.answer_date,
        r.linked_id, r.data, r.created_at, s.updated_at
    FROM practice_state s LEFT JOIN practice_rows r ON r.id = s.id;
CREATE TRIGGER practices_insert INSTEAD OF INSERT ON practices
BEGIN
    INSERT INTO practice_rows (id, case_key, role, sector, company_piva, cp_utente, cp_gestore, point, customer_id, customer_name,
        switch_date, credit_cents, estimate_cents, previous_cents, cmor_cents, charged_cents, collected_cents, cause_code,
        motivation, window_open, window_close, suspension_term, answer_date, linked_id, data, created_at)
    VALUES (NEW.id, NEW.case_key, NEW.role, NEW.sector, NEW.company_piva, NEW.cp_utente, NEW.cp_gestore, NEW.point, NEW.customer_id,
        coalesce(NEW.customer_name, ''), coalesce(NEW.switch_date, ''), coalesce(NEW.credit_cents, 0),
        coalesce(NEW.estimate_cents, 0), coalesce(NEW.previous_cents, 0), coalesce(NEW.cmor_cents, 0),
        coalesce(NEW.charged_cents, 0), coalesce(NEW.collected_cents, 0), coalesce(NEW.cause_code, ''),
        coalesce(NEW.motivation, ''), coalesce(NEW.window_open, ''), coalesce(NEW.window_close, ''),
        coalesce(NEW.suspension_term, ''), coalesce(NEW.answer_date, ''), NEW.linked_id, coalesce(NEW.data, '{}'), NEW.created_at);
    INSERT INTO practice_state (id, state, state_since, request_date, updated_at)
    VALUES (last_insert_rowid(), NEW.state, NEW.state_since, coalesce(NEW.request_date, ''), NEW.updated_at);
END;
CREATE TRIGGER practices_update INSTEAD OF UPDATE ON practices
BEGIN
    UPDATE practice_rows SET id = NEW.id, case_key = NEW.case_key, role = NEW.role, sector = NEW.sector, company_piva = NEW.company_piva,
        cp_utente = NEW.cp_utente, cp_gestore = NEW.cp_gestore, point = NEW.point, customer_id = NEW.customer_id,
        customer_name = NEW.customer_name, switch_date = NEW.switch_date, credit_cents = NEW.credit_cents,
        estimate_cents = NEW.estimate_cents, previous_cents = NEW.previous_cents, cmor_cents = NEW.cmor_cents,
        charged_cents = NEW.charged_cents, collected_cents = NEW.collected_cents, cause_code = NEW.cause_code,
        motivation = NEW.motivation, window_open = NEW.window_open, window_close = NEW.window_close,
        suspension_term = NEW.suspension_term, answer_date = NEW.answer_date, linked_id = NEW.linked_id, data = NEW.data,
        created_at = NEW.created_at
    WHERE id = OLD.id;
    UPDATE practice_state SET id = NEW.id, state = NEW.state, state_since = NEW.state_since,
        request_date = NEW.request_date, updated_at = NEW.updated_at
    WHERE id = OLD.id;
END;
CREATE TRIGGER practices_delete INSTEAD OF DELETE ON practices
BEGIN
    DELETE FROM practice_state WHERE id = OLD.id;
    DELETE FROM practice_rows WHERE id = OLD.id;
END;
