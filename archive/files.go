package archive

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cmord/cmord/flows"
)

// File states.
const (
	StateReceived  = "received"  // archived, not yet processed
	StateProcessed = "processed" // processed (possibly with refused rows)
	StateRejected  = "rejected"  // refused as a whole
	StateDuplicate = "duplicate" // identical content already received: not processed again
	StateBuilt     = "built"     // produced by us, not yet published
	StatePublished = "published" // delivered to its target(s)
)

// File is one version of a logical file in the archive.
type File struct {
	ID          int64
	Source      string
	Name        string
	Direction   string
	Kind        string
	Hash        string
	Size        int64
	Version     int
	State       string
	Reason      string
	DuplicateOf int64
	ReceivedAt  time.Time
	ProcessedAt time.Time
	Meta        map[string]string
}

// IngestRequest describes a file entering the archive.
type IngestRequest struct {
	Source    string // folder:<name>, sftp:<endpoint>, built, export, digest, cli
	Name      string // logical (base) name
	Direction string // in | out
	Kind      string // input kind, flow key, or "unknown"
	State     string // initial state; default received (in) or built (out)
	Path      string // read the content from this file...
	Reader    io.Reader
	// MaxSize, when > 0, refuses content bigger than this while reading it: nothing is
	// stored but its hash and size, the row gets state rejected with a reason, and
	// IngestResult.TooBig is set.
	MaxSize int64
	Meta    map[string]string
	Inputs  []int64 // provenance: the files this one was made from
	At      time.Time
}

// IngestResult says what the archive did with an ingested file.
type IngestResult struct {
	File File
	// Existing is true when (source, name) already had this exact content as its
	// latest version: nothing new was stored, and File is that earlier row. A crash
	// recovery re-ingest lands here, and File.State tells whether it was processed.
	Existing bool
	// TooBig: the content passed IngestRequest.MaxSize; only its hash and size are
	// indexed (no blob), whatever an earlier row of the same content says.
	TooBig bool
}

// TooBigReason is the reason recorded for a file refused for its size.
func TooBigReason(size, limit int64) string {
	return fmt.Sprintf("the file is %s bytes, over the limit of %s bytes: not processed; only its SHA-256 and size are archived, not its content",
		flows.GroupThousands(size), flows.GroupThousands(limit))
}

// UnreadTooBigReason is the reason recorded for a file refused for its size before
// any of it was read (an SII file whose listed size passes its limit).
func UnreadTooBigReason(size, limit int64) string {
	return fmt.Sprintf("the file is %s bytes, over the limit of %s bytes: not downloaded, not processed; only its name and size are archived, not its content",
		flows.GroupThousands(size), flows.GroupThousands(limit))
}

// tooBigReason is the refusal of content not stored: hash "" when none was read.
func tooBigReason(hash string, size, limit int64) string {
	if hash == "" {
		return UnreadTooBigReason(size, limit)
	}
	return TooBigReason(size, limit)
}

// Ingest stores the content in the blob store and indexes it as a new version of
// (source, name), in one transaction with its provenance and a RECEIVED/BUILT event.
// Content identical to another file already received (any name) is indexed with
// state "duplicate" and DuplicateOf set: callers must not process it again.
func (s *Store) Ingest(ctx context.Context, req IngestRequest) (IngestResult, error) {
	var res IngestResult
	if req.Source == "" || req.Name == "" {
		return res, errors.New("archive: ingest needs a source and a name")
	}
	if req.Direction != "in" && req.Direction != "out" {
		return res, fmt.Errorf("archive: direction %q", req.Direction)
	}
	if req.Kind == "" {
		req.Kind = "unknown"
	}
	var hash string
	var size int64
	var err error
	r := req.Reader
	if req.Path != "" {
		f, err := os.Open(req.Path)
		if err != nil {
			return res, err
		}
		defer f.Close()
		r = f
	} else if r == nil {
		return res, errors.New("archive: ingest needs a path or a reader")
	}
	hash, size, stored, err := s.Blobs.PutLimited(r, req.MaxSize)
	if err != nil {
		return res, err
	}
	if !stored {
		req.State = StateRejected
	}
	at := req.At
	if at.IsZero() {
		at = s.now()
	}
	err = s.Write(ctx, func(tx *sql.Tx) error {
		res, err = s.ingestTx(ctx, tx, req, hash, size, at, stored)
		return err
	})
	if !stored {
		res.TooBig = true
		res.File.State = StateRejected
		res.File.Reason = TooBigReason(size, req.MaxSize)
	}
	return res, err
}

// IngestUnreadTx indexes, inside the caller's transaction, a file refused for its size
// before any byte of it was read (its size is what the SFTP listing said, over
// req.MaxSize): a row with its name, size and reason, state rejected, and no content
// nor hash (hash "" names an empty blob row that is never kept). The result is TooBig.
func (s *Store) IngestUnreadTx(ctx context.Context, tx *sql.Tx, req IngestRequest, size int64) (IngestResult, error) {
	if req.Kind == "" {
		req.Kind = "unknown"
	}
	req.State = StateRejected
	at := req.At
	if at.IsZero() {
		at = s.now()
	}
	res, err := s.ingestTx(ctx, tx, req, "", size, at, false)
	res.TooBig = true
	return res, err
}

// IngestTx indexes content already stored with Blobs.Put inside the caller's
// transaction, so that a builder can archive a flow file, mark the requests it
// carries as sent and queue its delivery atomically.
func (s *Store) IngestTx(ctx context.Context, tx *sql.Tx, req IngestRequest, hash string, size int64) (IngestResult, error) {
	if req.Kind == "" {
		req.Kind = "unknown"
	}
	at := req.At
	if at.IsZero() {
		at = s.now()
	}
	return s.ingestTx(ctx, tx, req, hash, size, at, true)
}

func (s *Store) ingestTx(ctx context.Context, tx *sql.Tx, req IngestRequest, hash string, size int64, at time.Time, stored bool) (IngestResult, error) {
	var res IngestResult
	// kept goes from 0 to 1 when content refused for its size is stored later (the
	// limit was raised), never back.
	blobSize := size
	if hash == "" {
		blobSize = 0 // nothing was read: the row of unread content, shared, holds none
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO blobs (hash, size, created_at, kept) VALUES (?, ?, ?, ?)
		ON CONFLICT (hash) DO UPDATE SET kept = max(kept, excluded.kept)`, hash, blobSize, TS(at), stored); err != nil {
		return res, err
	}
	latest, err := scanFile(tx.QueryRowContext(ctx, fileSelect+` WHERE source = ? AND name = ? ORDER BY version DESC LIMIT 1`, req.Source, req.Name))
	switch {
	case err == nil && latest.Hash == hash && hash != "": // "" is unread content: not known to be the same
		res.File, res.Existing = latest, true
		return res, nil
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return res, err
	}
	version := latest.Version + 1
	state := req.State
	if state == "" {
		state = StateReceived
		if req.Direction == "out" {
			state = StateBuilt
		}
	}
	var dupOf int64
	reason := ""
	if !stored {
		reason = tooBigReason(hash, size, req.MaxSize)
	}
	// A refused file does not count as received: the same bytes dropped again (after
	// the configuration was corrected) are processed.
	if req.Direction == "in" && stored {
		err := tx.QueryRowContext(ctx, `SELECT id FROM files WHERE hash = ? AND direction = 'in' AND state NOT IN ('duplicate', 'rejected') ORDER BY id LIMIT 1`, hash).Scan(&dupOf)
		if err == nil {
			state = StateDuplicate
			reason = fmt.Sprintf("identical content already received as file #%d", dupOf)
		} else if !errors.Is(err, sql.ErrNoRows) {
			return res, err
		}
	}
	meta, _ := json.Marshal(nonNil(req.Meta))
	r, err := tx.ExecContext(ctx, `INSERT INTO files (source, name, direction, kind, hash, size, version, state, reason, duplicate_of, received_at, meta)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULLIF(?, 0), ?, ?)`,
		req.Source, req.Name, req.Direction, req.Kind, hash, size, version, state, reason, dupOf, TS(at), string(meta))
	if err != nil {
		return res, fmt.Errorf("archive: index file: %w", err)
	}
	id, _ := r.LastInsertId()
	for _, in := range req.Inputs {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO provenance (output_id, input_id) VALUES (?, ?)`, id, in); err != nil {
			return res, fmt.Errorf("archive: provenance: %w", err)
		}
	}
	evType := "RECEIVED"
	if req.Direction == "out" {
		evType = "BUILT"
	}
	detail := fmt.Sprintf("%s %s v%d sha256:%s size %d", req.Source, req.Name, version, hash, size)
	if dupOf != 0 {
		detail += fmt.Sprintf(" duplicate of #%d", dupOf)
	}
	if !stored && hash == "" {
		detail = fmt.Sprintf("%s %s v%d size %d over the size limit of %d: not read, content not kept", req.Source, req.Name, version, size, req.MaxSize)
	} else if !stored {
		detail += fmt.Sprintf(" over the size limit of %d: content not kept", req.MaxSize)
	}
	if err := s.AppendEvent(tx, Event{Type: evType, FileID: id, Detail: detail, At: at}); err != nil {
		return res, err
	}
	res.File = File{ID: id, Source: req.Source, Name: req.Name, Direction: req.Direction, Kind: req.Kind,
		Hash: hash, Size: size, Version: version, State: state, Reason: reason, DuplicateOf: dupOf,
		ReceivedAt: at, Meta: nonNil(req.Meta)}
	return res, nil
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// SetFileState records the outcome of processing a file, inside the caller's
// transaction (the same one that commits the processing's effects).
func (s *Store) SetFileState(ctx context.Context, tx *sql.Tx, id int64, state, reason string, meta map[string]string) error {
	reason = flows.EscapeText(flows.Truncate(reason, flows.MaxMessageLen)) // may quote outside values
	q := `UPDATE files SET state = ?, reason = ?, processed_at = ? WHERE id = ?`
	args := []any{state, reason, TS(s.now()), id}
	if meta != nil {
		m, _ := json.Marshal(meta)
		q = `UPDATE files SET state = ?, reason = ?, processed_at = ?, meta = json_patch(meta, ?) WHERE id = ?`
		args = []any{state, reason, TS(s.now()), string(m), id}
	}
	r, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("archive: set file state: %w", err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return fmt.Errorf("archive: no file #%d", id)
	}
	return s.AppendEvent(tx, Event{Type: strings.ToUpper(state), FileID: id, Detail: reason})
}

const fileSelect = `SELECT id, source, name, direction, kind, hash, size, version, state, reason,
	coalesce(duplicate_of, 0), received_at, processed_at, meta FROM files`

type rowScanner interface{ Scan(dest ...any) error }

func scanFile(row rowScanner) (File, error) {
	var f File
	var received string
	var processed sql.NullString
	var meta string
	err := row.Scan(&f.ID, &f.Source, &f.Name, &f.Direction, &f.Kind, &f.Hash, &f.Size, &f.Version,
		&f.State, &f.Reason, &f.DuplicateOf, &received, &processed, &meta)
	if err != nil {
		return f, err
	}
	f.ReceivedAt, _ = ParseTS(received)
	f.ProcessedAt = nullTS(processed)
	_ = json.Unmarshal([]byte(meta), &f.Meta)
	return f, nil
}

// GetFile returns one file version by id.
func (s *Store) GetFile(ctx context.Context, id int64) (File, error) {
	f, err := scanFile(s.r.QueryRowContext(ctx, fileSelect+` WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return f, fmt.Errorf("archive: no file #%d: %w", id, ErrNotFound)
	}
	return f, err
}

// ErrNotFound is returned (wrapped) when a looked-up record does not exist.
var ErrNotFound = errors.New("not found")

// FileFilter selects files for ListFiles.
type FileFilter struct {
	Source, Name, Kind, Direction, State string
	Since, Until                         time.Time
	Limit                                int
}

// ListFiles lists file versions, newest first.
func (s *Store) ListFiles(ctx context.Context, f FileFilter) ([]File, error) {
	var where []string
	var args []any
	add := func(cond string, v any) { where = append(where, cond); args = append(args, v) }
	if f.Source != "" {
		add("source = ?", f.Source)
	}
	if f.Name != "" {
		add("name = ?", f.Name)
	}
	if f.Kind != "" {
		add("kind = ?", f.Kind)
	}
	if f.Direction != "" {
		add("direction = ?", f.Direction)
	}
	if f.State != "" {
		add("state = ?", f.State)
	}
	if !f.Since.IsZero() {
		add("received_at >= ?", TS(f.Since))
	}
	if !f.Until.IsZero() {
		add("received_at < ?", TS(f.Until))
	}
	q := fileSelect
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []File
	for rows.Next() {
		fl, err := scanFile(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, fl)
	}
	return out, rows.Err()
}

// History returns every version of the logical file (source, name), oldest first. If
// source is empty, every logical file of that name is included.
func (s *Store) History(ctx context.Context, source, name string) ([]File, error) {
	q := fileSelect + ` WHERE name = ?`
	args := []any{name}
	if source != "" {
		q += ` AND source = ?`
		args = append(args, source)
	}
	rows, err := s.r.QueryContext(ctx, q+` ORDER BY source, version`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []File
	for rows.Next() {
		f, err := scanFile(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// Provenance returns the ids of the inputs of a file (what it was made from) and of
// the outputs made from it.
func (s *Store) Provenance(ctx context.Context, id int64) (inputs, outputs []int64, err error) {
	q := func(sqlText string) ([]int64, error) {
		rows, err := s.r.QueryContext(ctx, sqlText, id)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var ids []int64
		for rows.Next() {
			var v int64
			if err := rows.Scan(&v); err != nil {
				return nil, err
			}
			ids = append(ids, v)
		}
		return ids, rows.Err()
	}
	if inputs, err = q(`SELECT input_id FROM provenance WHERE output_id = ? ORDER BY input_id`); err != nil {
		return
	}
	outputs, err = q(`SELECT output_id FROM provenance WHERE input_id = ? ORDER BY output_id`)
	return
}

// AddProvenance links an output file to more inputs.
func (s *Store) AddProvenance(ctx context.Context, tx *sql.Tx, output int64, inputs ...int64) error {
	for _, in := range inputs {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO provenance (output_id, input_id) VALUES (?, ?)`, output, in); err != nil {
			return err
		}
	}
	return nil
}

// OpenFile opens the content of an archived file.
func (s *Store) OpenFile(ctx context.Context, id int64) (io.ReadCloser, File, error) {
	f, err := s.GetFile(ctx, id)
	if err != nil {
		return nil, f, err
	}
	if f.Hash == "" {
		return nil, f, fmt.Errorf("file #%d %s: its content was not kept, nor read (%s)", f.ID, f.Name, f.Reason)
	}
	rc, err := s.Blobs.OpenSized(f.Hash, f.Size)
	if err != nil {
		var kept bool
		if s.r.QueryRowContext(ctx, `SELECT kept FROM blobs WHERE hash = ?`, f.Hash).Scan(&kept) == nil && !kept {
			return nil, f, fmt.Errorf("file #%d %s: its content was not kept (refused for its size: %s); only its SHA-256 %s is archived", f.ID, f.Name, f.Reason, f.Hash)
		}
	}
	return rc, f, err
}
