-- An exception resolved automatically and raised again is a new occurrence of the same
-- problem: opened_at is when the current occurrence began (NULL: first_seen), so that
-- urgent alerts follow occurrences (a reopened exception is alerted again, and repeats
-- are held per occurrence) while first_seen keeps the first time it was ever seen.
ALTER TABLE exceptions ADD COLUMN opened_at TEXT;
