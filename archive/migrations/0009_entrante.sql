-- Entrante side: billing data accumulated per practice and report period (REND), and
-- the lines billing must act on (credit/debit notes) waiting for their export.

-- One row per entrante.fatturato row accepted: the REND values as they arrived. A
-- practice is reported in the period (AAAA-MM, Europe/Rome) its billing data arrived;
-- within a period the latest line of an invoice wins (superseded marks the others).
CREATE TABLE entrante_report_lines (
    id          INTEGER PRIMARY KEY,
    practice_id INTEGER NOT NULL REFERENCES practices (id),
    period      TEXT NOT NULL,               -- AAAA-MM
    file_id     INTEGER NOT NULL REFERENCES files (id),
    line        INTEGER NOT NULL,
    invoice     TEXT NOT NULL,               -- NUM_FATTURA_CMOR
    data        TEXT NOT NULL,               -- JSON: REND field → value
    arrived_at  TEXT NOT NULL,
    superseded  INTEGER NOT NULL DEFAULT 0,
    request_id  INTEGER REFERENCES requests (id), -- the REND row it was reported in
    UNIQUE (file_id, line)
);
CREATE INDEX entrante_report_pending ON entrante_report_lines (period) WHERE request_id IS NULL AND superseded = 0;
CREATE INDEX entrante_report_practice ON entrante_report_lines (practice_id, period, invoice);

-- Lines of billing exports that accumulate (credit_notes): written with the practice
-- change that causes them, exported by the next build in one file.
CREATE TABLE entrante_billing_lines (
    id             INTEGER PRIMARY KEY,
    export         TEXT NOT NULL,            -- credit_notes
    practice_id    INTEGER NOT NULL REFERENCES practices (id),
    file_id        INTEGER NOT NULL,         -- the file that caused it (provenance)
    line           INTEGER NOT NULL,
    data           TEXT NOT NULL,            -- JSON: export field → value
    created_at     TEXT NOT NULL,
    export_file_id INTEGER REFERENCES files (id),
    UNIQUE (export, practice_id, file_id, line)
);
CREATE INDEX entrante_billing_pending ON entrante_billing_lines (export) WHERE export_file_id IS NULL;
