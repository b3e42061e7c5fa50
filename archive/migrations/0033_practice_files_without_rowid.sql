-- practice_files becomes a WITHOUT ROWID table (issue 16): its PRIMARY KEY is the
-- whole row, so as a rowid table every link was stored twice, once in the table and
-- once in the key's index. Keyed by its primary key, a link is stored once. Same
-- columns, same rows, same key: no reader changes. (Not in the state chain.)
CREATE TABLE practice_files_keyed (
    practice_id INTEGER NOT NULL REFERENCES practices (id),
    file_id     INTEGER NOT NULL REFERENCES files (id),
    relation    TEXT NOT NULL,               -- input | built | answer | export
    line        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (practice_id, file_id, relation, line)
) WITHOUT ROWID;
INSERT INTO practice_files_keyed (practice_id, file_id, relation, line)
    SELECT practice_id, file_id, relation, line FROM practice_files;
DROP TABLE practice_files;
ALTER TABLE practice_files_keyed RENAME TO practice_files;
CREATE INDEX practice_files_file ON practice_files (file_id);
