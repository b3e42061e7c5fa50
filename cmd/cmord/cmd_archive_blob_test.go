package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cmord/cmord/archive"
)

// TestArchiveCatAndVerifyCompressedBlob: `cmord archive cat` prints a file the store
// keeps compressed as its own bytes; `cmord archive verify` checks it, and names its
// file on disk when its compressed stream is damaged.
func TestArchiveCatAndVerifyCompressedBlob(t *testing.T) {
	cfg, stateDir := cliFixture(t)
	var b bytes.Buffer
	b.WriteString("POD;CF;IMPORTO\r\n")
	for i := 0; b.Len() < 200<<10; i++ {
		fmt.Fprintf(&b, "IT001E%08d;RSSMRA80A01H501U;%d,%02d\r\n", i, i%977, i%100)
	}
	content := b.String()
	s, err := archive.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Ingest(context.Background(), archive.IngestRequest{Source: "folder:morosi", Name: "morosi_big.csv", Direction: "in",
		Kind: "uscente.morosi", Reader: strings.NewReader(content)})
	if err != nil {
		t.Fatal(err)
	}
	path, compressed, err := s.Blobs.StoredFile(res.File.Hash)
	s.Close()
	if err != nil || !compressed {
		t.Fatalf("stored as %s, compressed %v: %v", path, compressed, err)
	}
	id := fmt.Sprint(res.File.ID)
	code, out, errOut := runCLI(t, "archive", "cat", id, "--config", cfg)
	if code != exitOK || out != content {
		t.Fatalf("archive cat: exit %d, %d bytes (%.30q…), want the file's %d\n%s", code, len(out), out, len(content), errOut)
	}
	if code, out, errOut := runCLI(t, "archive", "verify", "--config", cfg); code != exitOK {
		t.Fatalf("archive verify: exit %d\n%s%s", code, out, errOut)
	}

	stored, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	stored[len(stored)/2] ^= 0x10
	os.Chmod(path, 0o644)
	if err := os.WriteFile(path, stored, 0o444); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI(t, "archive", "verify", "--config", cfg)
	for _, want := range []string{"blob " + res.File.Hash + ": damaged compressed content in " + path, "used by file #" + id + " in morosi_big.csv", "1 problem found"} {
		if !strings.Contains(out, want) {
			t.Errorf("archive verify output lacks %q:\n%s", want, out)
		}
	}
	if code != exitFindings {
		t.Errorf("archive verify: exit %d, want %d", code, exitFindings)
	}
	code, _, errOut = runCLI(t, "archive", "cat", id, "--config", cfg)
	if code == exitOK || !strings.Contains(errOut, path) {
		t.Errorf("archive cat of the damaged blob: exit %d, stderr %q; want a failure naming %s", code, errOut, path)
	}
}
