-- What a ready request becomes in its flow file (0014) moves into a table of its own,
-- written once when the request is made ready (or its payload replaced): the build
-- marks each request sent (state, file, time), and rewrote with it ~620 bytes of
-- payload per request. requests.payload stays, '' from now on.
CREATE TABLE request_payloads (
    id      INTEGER PRIMARY KEY,   -- requests.id
    payload TEXT NOT NULL
);
INSERT INTO request_payloads (id, payload) SELECT id, payload FROM requests WHERE payload <> '';
UPDATE requests SET payload = '' WHERE payload <> '';
