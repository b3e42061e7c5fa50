-- A delivery that failed for good (the remote name taken by other content) shows what
-- is on the server under that name, and a person can close it: `cmord deliveries
-- abandon` keeps the row in state 'failed' with closed_at/closed_by/close_note set
-- (shown as "abandoned"), so the audit trail of the attempts stays as it was.
ALTER TABLE deliveries ADD COLUMN conflict_size INTEGER;   -- remote size under our name (-1: unknown)
ALTER TABLE deliveries ADD COLUMN conflict_mtime TEXT;     -- remote modification time under our name
ALTER TABLE deliveries ADD COLUMN closed_at TEXT;          -- abandoned by a person
ALTER TABLE deliveries ADD COLUMN closed_by TEXT NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN close_note TEXT NOT NULL DEFAULT '';
