-- A practice's customer and CMOR amount are looked up in tables of their own instead
-- of the indexes practices_customer and practices_cmor (issue 16). A billing extract
-- brings its customers and amounts in no order: every chunk it commits (32,768 cases)
-- rewrote nearly every leaf page of both indexes into the WAL, and every checkpoint
-- wrote them again; at a million rows that was about an eighth of the bytes written
-- (docs/benchmarks-uscente.md, "Sixth round"). The tables hold what the indexes held,
-- (value, practice id), kept right by the triggers below for every writer (cmord, and a
-- person writing the view practices) -- except the practices listed in
-- practice_lookup_pending: the uscente.morosi handler lists the practices a chunk
-- creates there, before their rows, in the chunk's transaction, and at the end of the
-- file moves them all at once, sorted (archive.MovePendingLookups), so that each leaf
-- page of the two tables is written once per file instead of once per chunk. Every
-- reader by customer or amount reads the table and the pending practices; a pending
-- practice updated or deleted meanwhile needs nothing (the move reads its current
-- values; its pending row goes with it). Not chained: derived from practice_rows, which
-- is; `cmord archive verify` compares them with it.
CREATE TABLE practice_customers (
    customer_id TEXT NOT NULL,
    practice_id INTEGER NOT NULL,
    PRIMARY KEY (customer_id, practice_id)
) WITHOUT ROWID;
CREATE TABLE practice_amounts (
    cmor_cents  INTEGER NOT NULL,
    practice_id INTEGER NOT NULL,
    PRIMARY KEY (cmor_cents, practice_id)
) WITHOUT ROWID;
CREATE TABLE practice_lookup_pending (
    practice_id INTEGER PRIMARY KEY
);
-- Filled in key order (the old indexes give it without a sort), then the indexes go.
INSERT INTO practice_customers (customer_id, practice_id) SELECT customer_id, id FROM practice_rows ORDER BY customer_id, id;
INSERT INTO practice_amounts (cmor_cents, practice_id) SELECT cmor_cents, id FROM practice_rows ORDER BY cmor_cents, id;
DROP INDEX practices_customer;
DROP INDEX practices_cmor;
CREATE TRIGGER practice_lookups_insert AFTER INSERT ON practice_rows
WHEN NOT EXISTS (SELECT 1 FROM practice_lookup_pending WHERE practice_id = NEW.id)
BEGIN
    INSERT INTO practice_customers (customer_id, practice_id) VALUES (NEW.customer_id, NEW.id);
    INSERT INTO practice_amounts (cmor_cents, practice_id) VALUES (NEW.cmor_cents, NEW.id);
END;
-- A practice whose customer, amount or id changes: its entry moves. A pending one (under
-- its old id or, once practice_lookups_pending_id has run, its new one): nothing to do.
CREATE TRIGGER practice_customers_update AFTER UPDATE OF customer_id, id ON practice_rows
WHEN (OLD.customer_id IS NOT NEW.customer_id OR OLD.id IS NOT NEW.id)
    AND NOT EXISTS (SELECT 1 FROM practice_lookup_pending WHERE practice_id IN (OLD.id, NEW.id))
BEGIN
    DELETE FROM practice_customers WHERE customer_id = OLD.customer_id AND practice_id = OLD.id;
    INSERT INTO practice_customers (customer_id, practice_id) VALUES (NEW.customer_id, NEW.id);
END;
CREATE TRIGGER practice_amounts_update AFTER UPDATE OF cmor_cents, id ON practice_rows
WHEN (OLD.cmor_cents IS NOT NEW.cmor_cents OR OLD.id IS NOT NEW.id)
    AND NOT EXISTS (SELECT 1 FROM practice_lookup_pending WHERE practice_id IN (OLD.id, NEW.id))
BEGIN
    DELETE FROM practice_amounts WHERE cmor_cents = OLD.cmor_cents AND practice_id = OLD.id;
    INSERT INTO practice_amounts (cmor_cents, practice_id) VALUES (NEW.cmor_cents, NEW.id);
END;
-- A pending practice whose id changes stays pending, under its new id.
CREATE TRIGGER practice_lookups_pending_id AFTER UPDATE OF id ON practice_rows
WHEN OLD.id IS NOT NEW.id AND EXISTS (SELECT 1 FROM practice_lookup_pending WHERE practice_id = OLD.id)
BEGIN
    DELETE FROM practice_lookup_pending WHERE practice_id = OLD.id;
    INSERT OR IGNORE INTO practice_lookup_pending (practice_id) VALUES (NEW.id);
END;
CREATE TRIGGER practice_lookups_delete AFTER DELETE ON practice_rows
BEGIN
    DELETE FROM practice_customers WHERE customer_id = OLD.customer_id AND practice_id = OLD.id;
    DELETE FROM practice_amounts WHERE cmor_cents = OLD.cmor_cents AND practice_id = OLD.id;
    DELETE FROM practice_lookup_pending WHERE practice_id = OLD.id;
END;
