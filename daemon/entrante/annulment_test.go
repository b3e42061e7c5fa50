package entrante

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/family"
	"github.com/cmord/cmord/flows"
)

// storeHost is a family.Host over a real archive (SQLite file in WAL mode, in a
// temporary directory) and a configuration built here: the family runs without a
// daemon, which is what the split into packages promises.
type storeHost struct {
	store *archive.Store
	cfg   *config.Config
	now   time.Time
}

func (h *storeHost) Archive() *archive.Store             { return h.store }
func (h *storeHost) Config() *config.Config              { return h.cfg }
func (h *storeHost) Catalog() *flows.Catalog             { return flows.DefaultCatalog() }
func (h *storeHost) Calendar() *flows.Calendar           { return flows.NewCalendar(0, 0) }
func (h *storeHost) Now() time.Time                      { return h.now }
func (h *storeHost) HandlerOf(string) family.Handler     { return nil }
func (h *storeHost) SIIRowHook(string) family.SIIRowHook { return nil }
func (h *storeHost) ArchiveBuilt(context.Context, *sql.Tx, family.Built, string) (archive.File, error) {
	return archive.File{}, nil
}
func (h *storeHost) QueueToSII(context.Context, *sql.Tx, archive.File) error     { return nil }
func (h *storeHost) QueueToBilling(context.Context, *sql.Tx, archive.File) error { return nil }

func newStoreHost(t *testing.T, roles ...string) *storeHost {
	t.Helper()
	st, err := archive.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := &config.Config{Company: config.Company{PIVA: "00488410010", PIVAGestore: "01234567897", Roles: roles},
		PracticeCode: config.PracticeCode{Template: "{SECTOR}{YY}{SEQ:7}"}}
	return &storeHost{store: st, cfg: cfg, now: time.Date(2025, 1, 20, 10, 0, 0, 0, flows.Rome)}
}

// TestRequestAnnulment: an entrante ANN_REQ is recorded only for an entrante practice
// still open, by a company holding the role, with an entrante cause (AN-99 with its
// motivation), and once; otherwise the findings say why and nothing is recorded.
func TestRequestAnnulment(t *testing.T) {
	for _, tc := range []struct {
		name       string
		roles      []string
		role       string // the practice's
		state      string
		cause, why string
		ready      bool     // an ANN_REQ already waits
		rules      []string // the findings' rules; none: recorded
	}{
		{name: "AN-07", roles: []string{"entrante"}, role: "entrante", state: flows.EntranteCharged, cause: "an-07 "},
		{name: "AN-99 with its motivation", roles: []string{"entrante"}, role: "entrante", state: flows.EntranteToCharge, cause: "AN-99", why: "cliente deceduto"},
		{name: "AN-99 without motivation", roles: []string{"entrante"}, role: "entrante", state: flows.EntranteCharged, cause: "AN-99",
			rules: []string{"ANN-MOTIVATION"}},
		{name: "an uscente cause", roles: []string{"entrante"}, role: "entrante", state: flows.EntranteCharged, cause: "AN-02",
			rules: []string{"ANN-CAUSE"}},
		{name: "annulled already", roles: []string{"entrante"}, role: "entrante", state: flows.EntranteAnnulled, cause: "AN-07",
			rules: []string{"ANN-STATE"}},
		{name: "one waits already", roles: []string{"entrante"}, role: "entrante", state: flows.EntranteCharged, cause: "AN-07", ready: true,
			rules: []string{"ANN-DUPLICATE"}},
		{name: "company not entrante", roles: []string{"uscente"}, role: "entrante", state: flows.EntranteCharged, cause: "AN-07",
			rules: []string{flows.RuleEntRole}},
		{name: "an uscente practice", roles: []string{"uscente", "entrante"}, role: "uscente", state: flows.StateSent, cause: "AN-07",
			rules: []string{flows.RuleEntRole}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newStoreHost(t, tc.roles...)
			ctx := context.Background()
			p := &archive.Practice{CaseKey: flows.EntranteCaseKey("SII2025A0000001"), Role: tc.role, Sector: "E", CompanyPIVA: "00488410010",
				CPGestore: "SII2025A0000001", Point: "IT001E00000001", CustomerID: "RSSMRA85T10A562S", CMOR: flows.MustAmount("45.00"), State: tc.state}
			var fs []flows.Finding
			err := h.store.Write(ctx, func(tx *sql.Tx) error {
				if err := h.store.CreatePractice(ctx, tx, p, archive.HistoryEntry{Flow: "TEST", At: h.now}); err != nil {
					return err
				}
				if tc.ready {
					if err := h.store.CreateRequest(ctx, tx, &archive.Request{PracticeID: p.ID, Flow: "ANN_REQ", CPUtente: "E250000099"}); err != nil {
						return err
					}
				}
				var err error
				fs, err = RequestAnnulment(ctx, h, tx, p, tc.cause, tc.why, flows.Date{}, 0, 0)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			var rules []string
			for _, f := range fs {
				rules = append(rules, f.Rule)
			}
			if strings.Join(rules, ",") != strings.Join(tc.rules, ",") {
				t.Fatalf("findings %v, want rules %v", fs, tc.rules)
			}
			reqs, err := h.store.Requests(ctx, nil, p.ID, "ANN_REQ", "ready", 0)
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			if tc.ready {
				want = 1
			}
			if len(tc.rules) == 0 {
				want++
			}
			if len(reqs) != want {
				t.Fatalf("%d ready ANN_REQ, want %d: %+v", len(reqs), want, reqs)
			}
			if len(tc.rules) > 0 {
				return
			}
			r := reqs[0]
			if r.CPUtente != "E250000001" || r.Data[flows.EntAnnCause] != strings.ToUpper(strings.TrimSpace(tc.cause)) ||
				r.Data[flows.EntEventDate] != "20/01/2025" || r.Data[flows.EntMotivation] != tc.why {
				t.Errorf("request %+v", r)
			}
		})
	}
}
