package archive

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"
)

// TestRequestFormsMixed: an archive holding requests stored by earlier versions (data
// as JSON, payloads of forms 1, 2 and 3, as text) beside requests stored now (data
// compact, payload form 4, as bytes) reads each the same way: the same data and
// payload from every reader, the practice's case given with the payloads that do not
// carry their rows (forms 3 and 4, and none) and not with those that do (1 and 2);
// and verify passes (requests are outside the state chain: rewriting the old rows
// into their old forms records nothing and breaks nothing).
func TestRequestFormsMixed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	rows := [][]string{{"IT001E1", "120.50"}, {"IT001E1", "7.00"}}
	hash := PayloadHash(rows)
	data := map[string]string{"IMPORTO_CREDITO": "271.23", "IMPORTO_INDENNIZZO": "271.23", "STIMA_SPESA_4_MESI": "420.21"}
	const kase = `{"case":"kept"}`
	type stored struct {
		code    string
		data    string // as an earlier version stored it ("" as now)
		payload string // likewise ("" as now)
		want    *RequestPayload
		kase    bool // the practice's case comes with the request
	}
	hashed := &RequestPayload{Layout: "REQ/sig", Hash: hash, Inputs: []int64{3}}
	tests := []stored{
		{code: "E250000001", want: hashed, kase: true},
		{code: "E250000002", data: `{"IMPORTO_CREDITO":"271.23","IMPORTO_INDENNIZZO":"271.23","STIMA_SPESA_4_MESI":"420.21"}`,
			payload: "3\x1e3\x1eREQ/sig\x1e" + hash, want: hashed, kase: true},
		{code: "E250000003", data: `{"IMPORTO_CREDITO":"271.23","IMPORTO_INDENNIZZO":"271.23","STIMA_SPESA_4_MESI":"420.21"}`,
			payload: "2\x1e3\x1eREQ/sig\x1eIT001E1\x1f120.50\x1eIT001E1\x1f7.00",
			want:    &RequestPayload{Layout: "REQ/sig", Values: rows, Inputs: []int64{3}}},
		{code: "E250000004", data: `{"IMPORTO_CREDITO":"271.23","IMPORTO_INDENNIZZO":"271.23","STIMA_SPESA_4_MESI":"420.21"}`,
			payload: "1\x1e3\x1eA\x1fB\x1eIT001E1\x1f120.50",
			want:    &RequestPayload{Rows: []map[string]string{{"A": "IT001E1", "B": "120.50"}}, Inputs: []int64{3}}},
	}
	ids := map[string]int64{}
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		for i, tt := range tests {
			p := &Practice{CaseKey: "U|IT001E1|" + tt.code, Role: "uscente", Sector: "E", CompanyPIVA: "01234567890", Point: "IT001E1",
				CustomerID: "X", State: "READY", Data: json.RawMessage(kase)}
			if err := s.CreatePractice(ctx, tx, p, HistoryEntry{}); err != nil {
				return err
			}
			r := &Request{PracticeID: p.ID, Flow: "REQ", CPUtente: tt.code, Data: data,
				Payload: &RequestPayload{Layout: "REQ/sig", Values: rows, Inputs: []int64{3}}}
			if err := s.CreateRequest(ctx, tx, r); err != nil {
				return err
			}
			ids[tests[i].code] = r.ID
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.Read().QueryRow(`SELECT count(*) FROM request_rows r JOIN request_payloads p ON p.id = r.id
		WHERE typeof(r.data) = 'blob' AND typeof(p.payload) = 'blob' AND hex(substr(r.data, 1, 1)) = '01' AND hex(substr(p.payload, 1, 1)) = '04'`).Scan(&n); err != nil || n != len(tests) {
		t.Fatalf("%d requests stored compact with a form 4 payload (%v), want %d", n, err, len(tests))
	}
	s.Close()
	// The others as earlier versions stored them, as text.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		if tt.data == "" {
			continue
		}
		if _, err := db.Exec(`UPDATE request_rows SET data = ? WHERE id = ?`, tt.data, ids[tt.code]); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`UPDATE request_payloads SET payload = ? WHERE id = ?`, tt.payload, ids[tt.code]); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.QueryRow(`SELECT count(*) FROM request_rows WHERE typeof(data) = 'text'`).Scan(&n); err != nil || n != len(tests)-1 {
		t.Fatalf("%d requests with data as text (%v), want %d", n, err, len(tests)-1)
	}
	db.Close()

	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	reqs, ps, err := s.ReadyRequestsWithPractices(ctx, nil, "REQ", 0, 10)
	if err != nil || len(reqs) != len(tests) {
		t.Fatalf("ready requests %d (%v), want %d", len(reqs), err, len(tests))
	}
	for i, tt := range tests {
		r, p := reqs[i], ps[i]
		if r.CPUtente != tt.code || !reflect.DeepEqual(r.Data, data) || !reflect.DeepEqual(r.Payload, tt.want) {
			t.Errorf("%s: data %v payload %+v; want %v and %+v", r.CPUtente, r.Data, r.Payload, data, tt.want)
		}
		if got := string(p.Data) == kase; got != tt.kase {
			t.Errorf("%s: practice's case %s, want it given %v", r.CPUtente, p.Data, tt.kase)
		}
		one, err := s.RequestByCPUtente(ctx, nil, tt.code)
		if err != nil || !reflect.DeepEqual(one.Data, data) {
			t.Errorf("%s by code: data %v (%v), want %v", tt.code, one.Data, err, data)
		}
		list, err := s.Requests(ctx, nil, r.PracticeID, "REQ", "ready", 0)
		if err != nil || len(list) != 1 || !reflect.DeepEqual(list[0].Data, data) {
			t.Errorf("%s by practice: %+v (%v), want its data %v", tt.code, list, err, data)
		}
	}
	rep, err := s.Verify(ctx, nil)
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %q (%v)", rep.Problems, err)
	}

	// Data rewritten now (SetRequest: a ready request refreshed, or cancelled) is
	// stored compact whatever form it had, and reads the same.
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		st, err := s.PreparePractices(ctx, tx)
		if err != nil {
			return err
		}
		for _, tt := range tests {
			if err := st.SetRequest(ctx, ids[tt.code], "cancelled", data); err != nil {
				st.Close(ctx)
				return err
			}
		}
		return st.Close(ctx)
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Read().QueryRow(`SELECT count(*) FROM request_rows WHERE typeof(data) = 'blob'`).Scan(&n); err != nil || n != len(tests) {
		t.Fatalf("%d requests with data compact after SetRequest (%v), want %d", n, err, len(tests))
	}
	for _, tt := range tests {
		one, err := s.RequestByCPUtente(ctx, nil, tt.code)
		if err != nil || one.State != "cancelled" || !reflect.DeepEqual(one.Data, data) {
			t.Errorf("%s after SetRequest: %s %v (%v), want cancelled with %v", tt.code, one.State, one.Data, err, data)
		}
	}
	if rep, err := s.Verify(ctx, nil); err != nil || !rep.OK() {
		t.Fatalf("verify: %q (%v)", rep.Problems, err)
	}
}
