package daemon

import (
	"context"
	"database/sql"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/cmord/cmord/flows"
)

// A ready request's payload (what it becomes in SI1.0050) is stored by position in the
// REQ layout of the day it was made ready. Whatever form the build finds — today's, the
// field-named form of earlier versions, one stored under another layout (the catalog
// changed in between), or none — the file it writes is the same.
func TestREQPayloadForms(t *testing.T) {
	tests := []struct {
		name   string
		stored func(t *testing.T, payload string, practiceData []byte) string // what the build finds
		form   string                                                         // its form ("" none)
	}{
		{"as stored", func(_ *testing.T, payload string, _ []byte) string { return payload }, "2"},
		{"no payload (made ready before payloads)", func(*testing.T, string, []byte) string { return "" }, ""},
		{"another layout", func(_ *testing.T, payload string, _ []byte) string {
			// Values by another layout's positions: read in today's, they would be wrong.
			parts := strings.Split(payload, "\x1e")
			parts[2] = "old"
			for i := 3; i < len(parts); i++ {
				vals := strings.Split(parts[i], "\x1f")
				slices.Reverse(vals)
				parts[i] = strings.Join(vals, "\x1f")
			}
			return strings.Join(parts, "\x1e")
		}, "2"},
		{"form 1 of earlier versions", form1Payload, "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newTestWorld(t, e2eNow, "")
			ctx := context.Background()
			takeIn(t, w.d, "morosi", "morosi_20251015.csv", e2eExtract())
			err := w.d.Store.Write(ctx, func(tx *sql.Tx) error {
				rows, err := tx.QueryContext(ctx, `SELECT r.id, coalesce(rp.payload, r.payload), coalesce(d.data, p.data) FROM requests r JOIN practices p ON p.id = r.practice_id
					LEFT JOIN practice_data d ON d.id = p.id LEFT JOIN request_payloads rp ON rp.id = r.id WHERE r.state = 'ready'`)
				if err != nil {
					return err
				}
				type ready struct {
					id            int64
					payload, data string
				}
				var rs []ready
				for rows.Next() {
					var r ready
					if err := rows.Scan(&r.id, &r.payload, &r.data); err != nil {
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
					if !strings.HasPrefix(r.payload, "2\x1e") {
						t.Fatalf("request %d stored payload %q, want form 2", r.id, r.payload)
					}
					p := tt.stored(t, r.payload, []byte(r.data))
					if !strings.HasPrefix(p, tt.form) || (tt.form == "") != (p == "") {
						t.Fatalf("test payload %q is not of form %q", p, tt.form)
					}
					// In the request's row, where versions before migration 0032 kept it.
					if _, err := tx.ExecContext(ctx, `DELETE FROM request_payloads WHERE id = ?`, r.id); err != nil {
						return err
					}
					if _, err := tx.ExecContext(ctx, `UPDATE requests SET payload = ? WHERE id = ?`, p, r.id); err != nil {
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
		})
	}
}

// form1Payload is what cmord stored before payloads were positional: the field names,
// then each row's values in their order.
func form1Payload(t *testing.T, payload string, practiceData []byte) string {
	data, err := flows.ParseUscenteData(practiceData)
	if err != nil {
		t.Fatal(err)
	}
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
	out := "1\x1e" + strings.Split(payload, "\x1e")[1] + "\x1e" + strings.Join(fields, "\x1f")
	for _, r := range rows {
		vals := make([]string, len(fields))
		for i, f := range fields {
			vals[i] = r[f]
		}
		out += "\x1e" + strings.Join(vals, "\x1f")
	}
	return out
}
