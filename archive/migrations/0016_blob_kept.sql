-- A file refused for its size while it was read is indexed by its hash and size, but
-- its content is not kept: kept = 0, no object in the blob store.
ALTER TABLE blobs ADD COLUMN kept INTEGER NOT NULL DEFAULT 1;
