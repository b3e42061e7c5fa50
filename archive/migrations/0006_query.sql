-- Indexes behind `cmord practices` / `cmord export` filters that 0005 does not cover:
-- cause code, request and answer date ranges, and the CMOR amount range. Practices
-- are few writes and many reads, so the extra index maintenance is cheap. (Not partial
-- indexes: the filters bind their values as parameters, which SQLite cannot match
-- against a partial index's condition.)
CREATE INDEX practices_cause ON practices (cause_code);
CREATE INDEX practices_request ON practices (request_date);
CREATE INDEX practices_answer ON practices (answer_date);
CREATE INDEX practices_cmor ON practices (cmor_cents);
