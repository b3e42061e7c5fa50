-- A practice's case is stored deflated against a dictionary (issue 16): the compact
-- form (flows.EncodeUscenteData, about 350 bytes) of one case of an extract shares
-- most of its bytes with the others (field layout, invoice numbering, dates, the
-- company's own text), and a raw deflate stream primed with another case of the same
-- extract is about 165 bytes where the case alone deflates to 224. Each transaction of
-- the uscente.morosi handler (a chunk of an extract) stores its first case here, and
-- every case it writes as form 2: 0x02, the dictionary's id (uvarint), the stream.
-- Forms 1 (compact) and JSON are still read: no stored case is rewritten, no recorded
-- hash changes.
-- A dictionary is never changed nor removed: every case built on it decodes through
-- it. The state chain seals its row (table tag 4) when it is written, so `cmord
-- archive verify` names a dictionary edited or deleted outside cmord; the triggers
-- refuse both to cmord's own connections, as the chain's do.
CREATE TABLE case_dicts (
    id   INTEGER PRIMARY KEY,
    dict BLOB NOT NULL
);
CREATE TRIGGER case_dicts_no_update BEFORE UPDATE ON case_dicts
BEGIN SELECT RAISE(ABORT, 'case dictionaries are append-only'); END;
CREATE TRIGGER case_dicts_no_delete BEFORE DELETE ON case_dicts
BEGIN SELECT RAISE(ABORT, 'case dictionaries are append-only'); END;
