-- Practices: one CMOR case seen from our side (one point, one customer, one switch
-- date, one role), the requests we filed for it, its history, and the files behind it.

CREATE TABLE practices (
    id              INTEGER PRIMARY KEY,
    case_key        TEXT NOT NULL UNIQUE,    -- uscente: U|point|customer|switch ; entrante: E|cp_gestore
    role            TEXT NOT NULL CHECK (role IN ('uscente', 'entrante')),
    sector          TEXT NOT NULL CHECK (sector IN ('E', 'G')),
    company_piva    TEXT NOT NULL,
    cp_utente       TEXT UNIQUE,             -- our code (uscente request); NULL for entrante practices
    cp_gestore      TEXT,                    -- the SII's code, once known
    point           TEXT NOT NULL,           -- POD or PDR
    customer_id     TEXT NOT NULL,           -- codice fiscale or partita IVA
    customer_name   TEXT NOT NULL DEFAULT '',
    switch_date     TEXT NOT NULL DEFAULT '',-- ISO date
    state           TEXT NOT NULL,
    state_since     TEXT NOT NULL,
    credit_cents    INTEGER NOT NULL DEFAULT 0,
    estimate_cents  INTEGER NOT NULL DEFAULT 0,
    previous_cents  INTEGER NOT NULL DEFAULT 0,
    cmor_cents      INTEGER NOT NULL DEFAULT 0,   -- indemnity requested (uscente) / notified (entrante)
    charged_cents   INTEGER NOT NULL DEFAULT 0,   -- entrante: billed to the customer
    collected_cents INTEGER NOT NULL DEFAULT 0,   -- entrante: collected from the customer
    cause_code      TEXT NOT NULL DEFAULT '',     -- last SII cause code
    motivation      TEXT NOT NULL DEFAULT '',     -- last SII motivation, verbatim
    window_open     TEXT NOT NULL DEFAULT '',     -- uscente request window (ISO dates)
    window_close    TEXT NOT NULL DEFAULT '',
    suspension_term TEXT NOT NULL DEFAULT '',     -- entrante: last day to request suspension
    request_date    TEXT NOT NULL DEFAULT '',     -- when the request was sent (ISO)
    answer_date     TEXT NOT NULL DEFAULT '',     -- last SII answer (ISO)
    linked_id       INTEGER REFERENCES practices (id), -- entrante ↔ uscente link (previous CMOR)
    data            TEXT NOT NULL DEFAULT '{}',   -- JSON: invoices, mora notices, computation audit, flags
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX practices_point ON practices (point);
CREATE INDEX practices_customer ON practices (customer_id);
CREATE INDEX practices_cp_gestore ON practices (cp_gestore) WHERE cp_gestore IS NOT NULL;
CREATE INDEX practices_state ON practices (role, state);
CREATE INDEX practices_switch ON practices (switch_date);

-- Every request we file to the SII carries its own CP_UTENTE, unique forever: the
-- indemnity request itself and every follow-up (annulment, suspension, revocation,
-- refund acknowledgement, report line).
CREATE TABLE requests (
    id          INTEGER PRIMARY KEY,
    practice_id INTEGER NOT NULL REFERENCES practices (id),
    flow        TEXT NOT NULL,               -- catalog key: REQ, ANN_REQ, SUSP_REQ, ...
    cp_utente   TEXT NOT NULL UNIQUE,
    state       TEXT NOT NULL,               -- ready | sent | admitted | inadmissible | accepted | rejected | cancelled
    data        TEXT NOT NULL DEFAULT '{}',  -- the values to write (JSON)
    file_id     INTEGER REFERENCES files (id),-- the flow file it was written into
    created_at  TEXT NOT NULL,
    sent_at     TEXT,
    answered_at TEXT,
    cause_code  TEXT NOT NULL DEFAULT '',
    motivation  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX requests_practice ON requests (practice_id);
CREATE INDEX requests_ready ON requests (flow, state);

-- Every state change of a practice, with the file (and line) that caused it.
CREATE TABLE practice_history (
    id          INTEGER PRIMARY KEY,
    practice_id INTEGER NOT NULL REFERENCES practices (id),
    at          TEXT NOT NULL,
    from_state  TEXT NOT NULL,
    to_state    TEXT NOT NULL,
    flow        TEXT NOT NULL DEFAULT '',    -- what drove it: input kind or catalog key
    file_id     INTEGER NOT NULL DEFAULT 0,
    line        INTEGER NOT NULL DEFAULT 0,
    cause_code  TEXT NOT NULL DEFAULT '',
    note        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX practice_history_practice ON practice_history (practice_id, id);

-- Which files touched which practice (input rows, built flows, SII answers, exports).
CREATE TABLE practice_files (
    practice_id INTEGER NOT NULL REFERENCES practices (id),
    file_id     INTEGER NOT NULL REFERENCES files (id),
    relation    TEXT NOT NULL,               -- input | built | answer | export
    line        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (practice_id, file_id, relation, line)
);
CREATE INDEX practice_files_file ON practice_files (file_id);

-- Sequences behind CP_UTENTE codes: one per (company, template scope), never reset,
-- advanced in the same transaction that uses the value, so no code is ever reused.
CREATE TABLE sequences (
    name TEXT PRIMARY KEY,
    next INTEGER NOT NULL
);
