package archive

import (
	"context"
	"database/sql"
	"testing"

	"github.com/cmord/cmord/flows"
)

// One practice whose stored case no longer decodes (damaged on disk, or edited
// outside cmord: verify reports it) must not take every other practice with it: a
// JSON case damaged the same way never did (readers got its bytes, the export left it
// out), and `cmord practices`, the exports and the digest list every practice.
func TestDamagedCaseListing(t *testing.T) {
	for _, form := range []string{"json", "compact"} {
		t.Run(form, func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			data := flows.UscenteData{Case: flows.Case{Sector: "E", POD: "IT001E00000042", CustomerCF: "VRDGPP70A01H501X", CustomerName: "Giuseppe Verdi",
				SwitchDate: flows.D(2025, 3, 1)}, Inputs: []flows.InputRef{{FileID: 1, Lines: []int{2}}}}
			var ids []int64
			if err := s.Write(ctx, func(tx *sql.Tx) error {
				for _, key := range []string{"U|a", "U|b"} {
					p := &Practice{CaseKey: key, Role: "uscente", Sector: "E", CompanyPIVA: "01234567890", Point: data.Case.POD,
						CustomerID: data.Case.CustomerCF, CustomerName: data.Case.CustomerName, SwitchDate: data.Case.SwitchDate, State: "READY"}
					if form == "compact" {
						p.Data = flows.EncodeUscenteData(&data, p.CaseRow())
					} else {
						p.Data = data.Marshal()
					}
					if err := s.CreatePractice(ctx, tx, p, HistoryEntry{Flow: "uscente.morosi"}); err != nil {
						return err
					}
					ids = append(ids, p.ID)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			var stored []byte
			if err := s.Read().QueryRow(`SELECT data FROM practice_data WHERE id = ?`, ids[0]).Scan(&stored); err != nil {
				t.Fatal(err)
			}
			if _, err := s.w.Exec(`UPDATE practice_data SET data = ? WHERE id = ?`, stored[:len(stored)/2], ids[0]); err != nil {
				t.Fatal(err)
			}
			list, err := s.QueryPractices(ctx, PracticeFilter{})
			if err != nil || len(list) != 2 {
				t.Errorf("listing with one damaged %s case: %d practices, %v; want both listed", form, len(list), err)
			}
			if p, err := s.PracticeByID(ctx, nil, ids[1]); err != nil || p.ID != ids[1] {
				t.Errorf("the other practice: %v", err)
			}
		})
	}
}
