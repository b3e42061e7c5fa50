-- A practice's updated_at is, most of the time, its state_since: a practice created,
-- built or delivered changes its state and nothing else at that moment. practice_state
-- kept the same 30-character time twice (about 30 bytes of a 97-byte row), and every
-- practice's state row is written by the handler that creates it and again by the
-- build: four writes under WAL. From here on cmord stores '' in updated_at when it is
-- state_since (issue 16), and the view reads it back as state_since: every reader,
-- and every hash of the state chain (which reads the view), sees the same values as
-- before; rows stored before keep their explicit time and read the same. The view's
-- INSTEAD OF triggers (a person writing practices by hand) store it the same way.
-- Dropping the view drops its triggers: they are created again as 0035 made them.
DROP VIEW practices;
CREATE VIEW practices (id, case_key, role, sector, company_piva, cp_utente, cp_gestore, point, customer_id, customer_name,
        switch_date, state, state_since, credit_cents, estimate_cents, previous_cents, cmor_cents, charged_cents,
        collected_cents, cause_code, motivation, window_open, window_close, suspension_term, request_date, answer_date,
        linked_id, data, created_at, updated_at) AS
    SELECT s.id, r.case_key, r.role, r.sector, r.company_piva, r.cp_utente, r.cp_gestore, r.point, r.customer_id, r.customer_name,
        r.switch_date, s.state, s.state_since, r.credit_cents, r.estimate_cents, r.previous_cents, r.cmor_cents, r.charged_cents,
        r.collected_cents, r.cause_code, r.motivation, r.window_open, r.window_close, r.suspension_term, s.request_date, r.answer_date,
        r.linked_id, r.data, r.created_at, CASE s.updated_at WHEN '' THEN s.state_since ELSE s.updated_at END
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
    VALUES (last_insert_rowid(), NEW.state, NEW.state_since, coalesce(NEW.request_date, ''),
        CASE WHEN NEW.updated_at = NEW.state_since THEN '' ELSE NEW.updated_at END);
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
        request_date = NEW.request_date,
        updated_at = CASE WHEN NEW.updated_at = NEW.state_since THEN '' ELSE NEW.updated_at END
    WHERE id = OLD.id;
END;
CREATE TRIGGER practices_delete INSTEAD OF DELETE ON practices
BEGIN
    DELETE FROM practice_state WHERE id = OLD.id;
    DELETE FROM practice_rows WHERE id = OLD.id;
END;
