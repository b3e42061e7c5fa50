-- The cause, request-date and answer-date indexes of 0006 become partial: a practice
-- is created with all three empty, and a million-row billing extract creates a million
-- practices, so full indexes cost three B-tree inserts per practice for values nobody
-- searches ('' is never a filter value). The query builder adds the literal condition
-- (col <> '') beside every filter on these columns, which lets SQLite use the partial
-- index even though the filter's own value is a bound parameter.
DROP INDEX practices_cause;
DROP INDEX practices_request;
DROP INDEX practices_answer;
CREATE INDEX practices_cause ON practices (cause_code) WHERE cause_code <> '';
CREATE INDEX practices_request ON practices (request_date) WHERE request_date <> '';
CREATE INDEX practices_answer ON practices (answer_date) WHERE answer_date <> '';
