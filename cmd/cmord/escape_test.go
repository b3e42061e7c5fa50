package main

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/cmord/cmord/archive"
)

// hostileName is a file name an attacker with write access to a drop folder may
// choose: a terminal escape (clear screen), a bidi override, a byte that is not UTF-8.
const hostileName = "fattura\x1b[2J\u202egpj\xff.csv"

// TestOutsideStringsEscaped: control and non-UTF-8 characters in names, values and
// SII texts never reach the terminal raw, whichever command shows them — even from
// rows written before values were escaped when stored.
func TestOutsideStringsEscaped(t *testing.T) {
	_, stateDir := cliFixture(t)
	s, err := archive.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := s.Ingest(ctx, archive.IngestRequest{Source: "folder:morosi", Name: hostileName, Direction: "in", Kind: "uscente.morosi",
		Reader: strings.NewReader("x"), At: cliFixtureAt, Meta: map[string]string{"path": "/srv/morosi/" + hostileName}})
	if err != nil {
		t.Fatal(err)
	}
	id := res.File.ID
	err = s.Write(ctx, func(tx *sql.Tx) error {
		// Raw, as an older version stored them.
		if _, err := tx.Exec(`UPDATE files SET state = 'rejected', reason = ? WHERE id = ?`, "bad row \x1b]0;owned\x07", id); err != nil {
			return err
		}
		if _, err := tx.Exec(`UPDATE practices SET customer_name = ? WHERE id = (SELECT min(id) FROM practices)`, "Rossi\x1b[31m Mario\u202e"); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO exceptions (fingerprint, kind, severity, owner, file_id, line, field, rule, value, practice_id,
			subject, message, action, due_on, first_seen, last_seen) VALUES ('raw', 'row_refused', 'high', 'operator', ?, 2, 'F', 'R',
			?, 0, ?, ?, '', '', ?, ?)`, id, "v\x1b[2J", hostileName, "refused: \x1b[2J"+hostileName, archive.TS(cliFixtureAt), archive.TS(cliFixtureAt))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var code string
	if err := s.Read().QueryRow(`SELECT cp_utente FROM practices WHERE id = (SELECT min(id) FROM practices)`).Scan(&code); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, args := range [][]string{
		{"exceptions"},
		{"archive", "ls"},
		{"archive", "show", strconv.FormatInt(id, 10)},
		{"archive", "history", strconv.FormatInt(id, 10)},
		{"practices"},
		{"practice", "show", code},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, out, errOut := runCLI(t, args...)
			all := out + errOut
			for i, r := range all {
				if (r < 0x20 && r != '\n') || r == 0x7f || r == 0x202e || r == unicode.ReplacementChar && !strings.HasPrefix(all[i:], "\uFFFD") {
					t.Fatalf("raw %U at byte %d:\n%s", r, i, strings.ToValidUTF8(all, "?"))
				}
			}
			if !strings.Contains(all, `\x1b`) {
				t.Errorf("the escape is not shown escaped:\n%s", all)
			}
		})
	}
}
