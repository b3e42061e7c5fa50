package daemon

import (
	"bytes"
	"context"
	"database/sql"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/uscente"
	"github.com/cmord/cmord/flows"
)

// A ready request's payload (what it becomes in SI1.0050) is stored as a SHA-256 of
// its rows, by position in the REQ layout of the day it was made ready (form 4, in
// bytes; form 3 in text before); the build computes the rows again from the case.
// Whatever form the build finds — today's, form 3, the rows stored by position (form
// 2) or by field name (form 1) by earlier versions, a payload stored under another
// layout (the catalog changed in between), or none — the file it writes is the same.
func TestREQPayloadForms(t *testing.T) {
	sig := flows.DefaultCatalog().Flow(uscente.FlowREQ).Layout().Signature()
	other := func(form string) func(t *testing.T, payload []byte, data flows.UscenteData) []byte {
		// Stored under another layout: form 2's values by another layout's positions
		// (read in today's, they would be wrong), form 3's and 4's hash of those.
		return func(t *testing.T, payload []byte, data flows.UscenteData) []byte {
			vals := reqValues(t, data)
			for _, v := range vals {
				slices.Reverse(v)
			}
			inputs := payloadInputs(t, payload)
			switch form {
			case "4":
				return withHash(t, bytes.Replace(payload, []byte(sig), []byte("old"), 1), archive.PayloadHash(vals))
			case "3":
				return []byte("3\x1e" + inputs + "\x1eold\x1e" + archive.PayloadHash(vals))
			}
			return []byte(form2Text(inputs, "old", vals))
		}
	}
	tests := []struct {
		name   string
		stored func(t *testing.T, payload []byte, data flows.UscenteData) []byte // what the build finds
		form   string                                                            // its form ("" none)
	}{
		{"as stored (the rows' hash)", func(_ *testing.T, payload []byte, _ flows.UscenteData) []byte { return payload }, "\x04"},
		{"no payload (made ready before payloads)", func(*testing.T, []byte, flows.UscenteData) []byte { return nil }, ""},
		{"hash under another layout", other("4"), "\x04"},
		{"form 3 of earlier versions", func(t *testing.T, payload []byte, data flows.UscenteData) []byte {
			return []byte("3\x1e" + payloadInputs(t, payload) + "\x1e" + sig + "\x1e" + archive.PayloadHash(reqValues(t, data)))
		}, "3"},
		{"form 3 under another layout", other("3"), "3"},
		{"form 2 of earlier versions", func(t *testing.T, payload []byte, data flows.UscenteData) []byte {
			return []byte(form2Text(payloadInputs(t, payload), sig, reqValues(t, data)))
		}, "2"},
		{"form 2 under another layout", other("2"), "2"},
		{"form 1 of earlier versions", form1Payload, "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newTestWorld(t, e2eNow, "")
			ctx := context.Background()
			takeIn(t, w.d, "morosi", "morosi_20251015.csv", e2eExtract())
			err := w.d.Store.Write(ctx, func(tx *sql.Tx) error {
				rows, err := tx.QueryContext(ctx, `SELECT r.id, r.practice_id, coalesce(rp.payload, r.payload) FROM requests r
					LEFT JOIN request_payloads rp ON rp.id = r.id WHERE r.state = 'ready'`)
				if err != nil {
					return err
				}
				type ready struct {
					id, practice int64
					payload      []byte
				}
				var rs []ready
				for rows.Next() {
					var r ready
					if err := rows.Scan(&r.id, &r.practice, &r.payload); err != nil {
						return err
					}
					rs = append(rs, r)
				}
				if err := rows.Close(); err != nil {
					return err
				}
				if len(rs) != 2 {
					t.Fatalf("%d ready requests, want 2", len(rs))
				}
				for _, r := range rs {
					if len(r.payload) == 0 || r.payload[0] != 0x04 || len(r.payload) > 60 {
						t.Fatalf("request %d stored payload %q (%d bytes), want form 4 (the rows' hash, not the rows)", r.id, r.payload, len(r.payload))
					}
					pr, err := w.d.Store.PracticeByID(ctx, tx, r.practice)
					if err != nil {
						return err
					}
					data, err := flows.ParseUscenteData(pr.Data)
					if err != nil {
						t.Fatal(err)
					}
					if got, err := archive.ParsePayload(string(r.payload)); err != nil || got.Layout != sig ||
						got.Hash != archive.PayloadHash(reqValues(t, data)) || len(got.Inputs) != 1 {
						t.Fatalf("request %d stored payload %q read as %+v (%v), want the hash of its rows under %s and its input", r.id, r.payload, got, err, sig)
					}
					p := tt.stored(t, r.payload, data)
					if !bytes.HasPrefix(p, []byte(tt.form)) || (tt.form == "") != (len(p) == 0) {
						t.Fatalf("test payload %q is not of form %q", p, tt.form)
					}
					// In the request's row, where versions before migration 0032 kept it
					// (as text: no version wrote bytes there).
					if _, err := tx.ExecContext(ctx, `DELETE FROM request_payloads WHERE id = ?`, r.id); err != nil {
						return err
					}
					if _, err := tx.ExecContext(ctx, `UPDATE requests SET payload = ? WHERE id = ?`, string(p), r.id); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			w.runOnce()
			pub := w.published()
			content, ok := pub[ourPIVA+"_SI10050_20251015_0001.csv"]
			if !ok || len(pub) != 1 {
				t.Fatalf("published %v", keys(pub))
			}
			golden(t, "REQ_e2e.csv", content)
			if es := w.exceptions("build_line_changed"); len(es) != 0 {
				t.Errorf("build_line_changed exceptions %+v, want none", es)
			}
		})
	}
}

// A ready request whose rows, computed again at build from its case, are not the ones
// decided when it was made ready (their hash differs: here the stored hash stands for
// a line computed otherwise, as by an earlier cmord, or from a case since changed
// outside cmord; no configuration enters it) is not sent: it stays ready, the other
// request goes out, and a build_line_changed exception names the request, the
// practice's point and customer, and why. Once the line computed is the one decided
// again, the next build sends it.
func TestREQLineChanged(t *testing.T) {
	var other archive.Request
	w, changed, decided := worldWithLineChanged(t, func(_ *testWorld, reqs []archive.Request) archive.Request {
		other = reqs[1]
		return reqs[0]
	})
	ctx := context.Background()
	w.runOnce()

	p := w.practice(changed.CPUtente)
	if r, err := w.d.Store.RequestByCPUtente(ctx, nil, changed.CPUtente); err != nil || r.State != "ready" || r.FileID != 0 {
		t.Errorf("request %s: state %s file #%d (%v), want still ready, in no file", changed.CPUtente, r.State, r.FileID, err)
	}
	if p.State != flows.StateReady {
		t.Errorf("practice %s: %s, want READY", changed.CPUtente, p.State)
	}
	pub := w.published()
	if len(pub) != 1 {
		t.Fatalf("published %v, want the other request's file", keys(pub))
	}
	for name, content := range pub {
		if strings.Contains(content, changed.CPUtente) {
			t.Errorf("the held request %s was published in %s", changed.CPUtente, name)
		}
		if !strings.Contains(content, other.CPUtente) {
			t.Errorf("%s does not carry the other request %s", name, other.CPUtente)
		}
	}
	es := w.exceptions("build_line_changed")
	if len(es) != 1 {
		t.Fatalf("build_line_changed exceptions %+v, want one", es)
	}
	if e := es[0]; e.Severity != archive.SevHigh || e.Owner != "compliance" || e.Subject != changed.CPUtente || e.PracticeID != p.ID ||
		!strings.Contains(e.Message, changed.CPUtente) || !strings.Contains(e.Message, p.Point) || !strings.Contains(e.Message, "differs from the one stored when the case was last decided") ||
		!strings.Contains(e.Action, "drop the case again") {
		t.Errorf("exception %+v: want high, compliance, naming %s, its point %s and that the line differs from the one decided", e, changed.CPUtente, p.Point)
	}

	// The line computed is the decided one again: the next build sends it.
	err := w.d.Store.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE request_payloads SET payload = ? WHERE id = ?`, decided, changed.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	w.runOnce()
	if r, err := w.d.Store.RequestByCPUtente(ctx, nil, changed.CPUtente); err != nil || r.State != "sent" || r.FileID == 0 {
		t.Errorf("request %s after the line is back: state %s file #%d (%v), want sent", changed.CPUtente, r.State, r.FileID, err)
	}
	n := 0
	for _, content := range w.published() {
		if strings.Contains(content, changed.CPUtente) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("request %s in %d published files, want 1", changed.CPUtente, n)
	}
}

// reqValues is the REQ rows of a case without the header fields, as the handler
// computes them when it makes the request ready.
func reqValues(t *testing.T, data flows.UscenteData) [][]string {
	t.Helper()
	recs, err := flows.ReqRecords(flows.DefaultCatalog().Flow(uscente.FlowREQ), flows.ReqHeader{}, data.Case, data.Audit)
	if err != nil {
		t.Fatal(err)
	}
	vals := make([][]string, len(recs))
	for i, r := range recs {
		vals[i] = r.Values
	}
	return vals
}

// form2Text is what cmord stored before form 3: the rows' values by position.
func form2Text(inputs, layout string, vals [][]string) string {
	out := "2\x1e" + inputs + "\x1e" + layout
	for _, v := range vals {
		out += "\x1e" + strings.Join(v, "\x1f")
	}
	return out
}

// form1Payload is what cmord stored before payloads were positional: the field names,
// then each row's values in their order.
func form1Payload(t *testing.T, payload []byte, data flows.UscenteData) []byte {
	rows := flows.ReqRows(flows.ReqHeader{}, data.Case, data.Audit)
	var fields []string
	seen := map[string]bool{}
	for _, r := range rows {
		for k := range r {
			if !seen[k] {
				seen[k] = true
				fields = append(fields, k)
			}
		}
	}
	sort.Strings(fields)
	out := "1\x1e" + payloadInputs(t, payload) + "\x1e" + strings.Join(fields, "\x1f")
	for _, r := range rows {
		vals := make([]string, len(fields))
		for i, f := range fields {
			vals[i] = r[f]
		}
		out += "\x1e" + strings.Join(vals, "\x1f")
	}
	return []byte(out)
}

// payloadInputs is the input ids of a stored payload, as forms 1-3 write them.
func payloadInputs(t *testing.T, stored []byte) string {
	t.Helper()
	p, err := archive.ParsePayload(string(stored))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, id := range p.Inputs {
		ids = append(ids, strconv.FormatInt(id, 10))
	}
	return strings.Join(ids, ",")
}
