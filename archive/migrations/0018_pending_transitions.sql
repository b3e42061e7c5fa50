-- A practice moved by one of our outbound flows (a request sent, a suspension
-- requested, a refund acknowledged, a month reported) changes state only once the flow
-- file is confirmed on the SII side (uploaded, size checked, renamed). The builder
-- records the move here in the transaction that builds the file; MarkDelivered applies
-- it in the transaction that records the publication, so a kill -9 between the upload
-- and the state change ends, after the restart's re-upload finds the file already
-- there, with the state changed once. practice_id 0: every practice linked to the file
-- as "built" (a REQ file of many practices is one row).
CREATE TABLE pending_transitions (
    id          INTEGER PRIMARY KEY,
    file_id     INTEGER NOT NULL REFERENCES files (id),
    practice_id INTEGER NOT NULL DEFAULT 0,
    from_state  TEXT NOT NULL,
    to_state    TEXT NOT NULL,
    flow        TEXT NOT NULL,
    note        TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL
);
CREATE INDEX pending_transitions_file ON pending_transitions (file_id);
