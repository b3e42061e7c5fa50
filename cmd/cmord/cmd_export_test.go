package main

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/export"
	"github.com/xuri/excelize/v2"
)

func TestExportCSV(t *testing.T) {
	_, stateDir := cliFixture(t)
	out := filepath.Join(t.TempDir(), "pratiche.csv")
	code, stdout, errOut := runCLI(t, "export", "--role", "uscente", "--decimal-comma", "-o", out)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.HasPrefix(stdout, "2 practices exported to "+out+" (archived as file #") {
		t.Errorf("stdout %q", stdout)
	}
	if errOut != "" {
		t.Errorf("stderr not a terminal, yet %q was written to it", errOut)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	goldenCLI(t, "export", "uscente.csv", data)
	if st, _ := os.Stat(out); st.Mode().Perm() != 0o640 {
		t.Errorf("export mode %v, want 0640 (personal data)", st.Mode().Perm())
	}
	// No temporary file is left beside it.
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*.part")); len(m) > 0 {
		t.Errorf("temporary files left: %v", m)
	}
	// The export is archived, byte for byte.
	s, err := archive.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	files, err := s.ListFiles(context.Background(), archive.FileFilter{Source: "export"})
	if err != nil || len(files) != 1 {
		t.Fatalf("archived exports: %v, %v", files, err)
	}
	sum := sha256.Sum256(data)
	if files[0].Hash != hex.EncodeToString(sum[:]) || files[0].Kind != "export.csv" || files[0].Meta["rows"] != "2" {
		t.Errorf("archived export %+v", files[0])
	}
}

func TestExportXLSX(t *testing.T) {
	cliFixture(t)
	out := filepath.Join(t.TempDir(), "pratiche.xlsx") // format from the extension
	code, stdout, errOut := runCLI(t, "export", "--lang", "en", "--no-archive", "-o", out)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if stdout != "3 practices exported to "+out+"\n" {
		t.Errorf("stdout %q", stdout)
	}
	x, err := excelize.OpenFile(out)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	rows, err := x.GetRows("Practices")
	if err != nil || len(rows) != 4 || rows[0][0] != export.Headers("en")[0] {
		t.Fatalf("rows %v, %v", rows, err)
	}
	if v, _ := x.GetCellValue("Practices", "N3", excelize.Options{RawCellValue: true}); v != "999.99" {
		t.Errorf("CMOR of G250000001 = %q, want 999.99", v)
	}
}

func TestExportDossier(t *testing.T) {
	cliFixture(t)
	out := filepath.Join(t.TempDir(), "E250000001.zip")
	code, stdout, errOut := runCLI(t, "export", "--dossier", "E250000001", "-o", out)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.HasPrefix(stdout, "dossier of practice E250000001 written to "+out) {
		t.Errorf("stdout %q", stdout)
	}
	zr, err := zip.OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	entries := map[string][]byte{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		entries[f.Name] = b
	}
	manifest := string(entries[export.ManifestName])
	for name, b := range entries {
		if name == export.ManifestName {
			continue
		}
		sum := sha256.Sum256(b)
		if !strings.Contains(manifest, hex.EncodeToString(sum[:])+"  "+name+"\n") {
			t.Errorf("manifest lacks a correct line for %s", name)
		}
	}
	if len(entries) != 8 { // practice.json, history.csv/.txt, exceptions.csv, 3 files, manifest
		t.Errorf("%d entries", len(entries))
	}
	goldenCLI(t, "export", "dossier_history.txt", entries["history.txt"])
}

func TestExportToStdout(t *testing.T) {
	cliFixture(t)
	code, stdout, errOut := runCLI(t, "export", "--format", "csv", "--pod", "IT001E00000009", "-o", "-")
	if code != exitOK || !strings.HasPrefix(stdout, "\uFEFF") || !strings.Contains(stdout, "G77") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, errOut)
	}
	if errOut != "1 practice exported\n" {
		t.Errorf("stderr %q", errOut)
	}
	// A bytes.Buffer is not a terminal: XLSX to a pipe is allowed.
	code, stdout, _ = runCLI(t, "export", "--format", "xlsx", "-o", "-")
	if code != exitOK || !bytes.HasPrefix([]byte(stdout), []byte("PK")) {
		t.Errorf("xlsx to a pipe: exit %d, %d bytes", code, len(stdout))
	}
}

func TestExportBadArgs(t *testing.T) {
	cliFixture(t)
	dir := t.TempDir()
	for _, bad := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--format", "csv"}, exitUsage, "-o FILE is required"},
		{[]string{"--format", "pdf", "-o", filepath.Join(dir, "x.pdf")}, exitUsage, `--format "pdf": want csv or xlsx`},
		{[]string{"--lang", "de", "-o", filepath.Join(dir, "x.csv")}, exitUsage, `--lang "de"`},
		{[]string{"--dossier", "E250000001", "--format", "csv", "-o", filepath.Join(dir, "x.zip")}, exitUsage, "--format does not apply"},
		{[]string{"--dossier", "NOPE", "-o", filepath.Join(dir, "x.zip")}, exitFindings, "no practice NOPE"},
		{[]string{"--amount-max", "abc", "-o", filepath.Join(dir, "x.csv")}, exitUsage, "--amount-max"},
		{[]string{"-o", filepath.Join(dir, "missing-dir", "x.csv")}, exitUsage, "missing-dir does not exist"},
	} {
		code, _, errOut := runCLI(t, append([]string{"export"}, bad.args...)...)
		if code != bad.code || !strings.Contains(errOut, bad.msg) {
			t.Errorf("export %v: exit %d, %q; want %d and %q", bad.args, code, errOut, bad.code, bad.msg)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) != 0 {
		t.Errorf("failed exports left files: %v", m)
	}
}

func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	b := &progressBar{w: &buf, what: "practices"}
	b.update(0, 200)
	b.update(100, 200) // within 100 ms of the last draw: skipped
	b.update(200, 200) // the final state is always drawn
	b.finish()
	want := "\r[>                             ]   0% 0/200 practices\r[==============================] 100% 200/200 practices\n"
	if buf.String() != want {
		t.Errorf("bar %q\nwant %q", buf.String(), want)
	}
	var nilBar *progressBar
	nilBar.update(1, 2) // a nil bar (not a terminal) draws nothing and does not panic
	nilBar.finish()
}

// The CSV's decimal separator follows --lang unless --decimal-comma or --decimal-point
// says otherwise; both together are a usage error.
func TestExportDecimalSeparator(t *testing.T) {
	cliFixture(t)
	tests := []struct {
		name  string
		flags []string
		code  int
		comma bool // amounts like 1234,50
	}{
		{"italian default", nil, exitOK, true},
		{"english default", []string{"--lang", "en"}, exitOK, false},
		{"italian with point", []string{"--decimal-point"}, exitOK, false},
		{"english with comma", []string{"--lang", "en", "--decimal-comma"}, exitOK, true},
		{"both", []string{"--decimal-comma", "--decimal-point"}, exitUsage, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "p.csv")
			args := append([]string{"export", "--role", "uscente", "--no-archive", "-o", out}, tt.flags...)
			code, _, errOut := runCLI(t, args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d: %s", code, tt.code, errOut)
			}
			if code != exitOK {
				return
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			// E250000001's CMOR is 120.50 in the fixture.
			comma, point := strings.Contains(string(data), "120,50"), strings.Contains(string(data), "120.50")
			if comma != tt.comma || point == tt.comma {
				t.Errorf("comma amounts %v, point amounts %v, want comma %v:\n%s", comma, point, tt.comma, data)
			}
		})
	}
}
