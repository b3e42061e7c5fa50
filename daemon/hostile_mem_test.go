package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/digest"
	"github.com/cmord/cmord/flows"
)

// hugeValue is the size of the text value in the SII answer of TestHugeValueMemory:
// the 500 MB of the field report.
const hugeValue = 500 << 20

// memoryBoundMiB is the promise: handling the answer and building the digest stay
// under this peak resident memory, whatever the value's size.
const memoryBoundMiB = 200

// hugeChildReport is what the child process prints on its last line.
type hugeChildReport struct {
	PeakKiB     int64 `json:"peak_kib"`
	DigestBytes int   `json:"digest_bytes"`
}

// childHuge runs one daemon cycle (SII poll: download, archive, process) and builds
// and renders the digest, then reports its own peak resident memory (VmHWM).
func childHuge(cfgPath string) int {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	d, err := New(cfg, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer d.Close()
	ctx := context.Background()
	if err := d.PollSII(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "poll:", err)
		return 1
	}
	dg, err := digest.Build(ctx, d.Store, digest.OptionsFromConfig(cfg), time.Now())
	if err != nil {
		fmt.Fprintln(os.Stderr, "digest:", err)
		return 1
	}
	subject, text, html, csv, err := dg.Render(cfg.Lang, false)
	if err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		return 1
	}
	rep := hugeChildReport{PeakKiB: vmHWM(), DigestBytes: len(subject) + len(text) + len(html) + len(csv)}
	b, _ := json.Marshal(rep)
	fmt.Println(string(b))
	return 0
}

func vmHWM() int64 {
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, ln := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(ln, "VmHWM:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb
		}
	}
	return -1
}

// writeHugeAnswer writes an SI1.0100 answer in XML whose MOTIVAZIONE holds size bytes
// of text, streaming: the test never holds the value.
func writeHugeAnswer(t *testing.T, path string, size int) {
	t.Helper()
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriterSize(fh, 1<<20)
	fmt.Fprintf(bw, `<?xml version="1.0" encoding="UTF-8"?>
<FlussoSI COD_SERVIZIO="SI1" COD_FLUSSO="0100">
  <Richiesta>
    <IdentificativiRichiesta>
      <PIVA_UTENTE>%s</PIVA_UTENTE>
      <PIVA_GESTORE>%s</PIVA_GESTORE>
      <CP_UTENTE>E250000002</CP_UTENTE>
    </IdentificativiRichiesta>
    <VERIFICA_AMM>0</VERIFICA_AMM>
    <COD_CAUSALE>4</COD_CAUSALE>
    <MOTIVAZIONE>`, ourPIVA, gestorePIVA)
	chunk := []byte(strings.Repeat("campo non valido ", 1<<16)[:1<<20])
	for left := size; left > 0; left -= len(chunk) {
		if _, err := bw.Write(chunk[:min(left, len(chunk))]); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Fprint(bw, "</MOTIVAZIONE>\n  </Richiesta>\n</FlussoSI>\n")
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestHugeValueMemory: an SII answer with a 500 MB text value. With the default
// limits it is refused from its listed size, never downloaded (name and size only, no
// hash); with the SII limit raised above it, it
// is archived and parsed: the XML reader cuts the text, the finding and the exception
// hold a bounded value with its size noted. Either way a child daemon process stays
// under 200 MiB of peak resident memory (VmHWM) while handling it and building the
// digest, and the digest stays small. A memory bound, not a speed assertion.
func TestHugeValueMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and reads 500 MB several times")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc for VmHWM")
	}
	w := newTestWorld(t, e2eNow, "")
	name := "SI10100_20251016_0001.xml"
	writeHugeAnswer(t, filepath.Join(w.srv.Root, "out", name), hugeValue)
	tests := []struct {
		name   string
		limits string
		parsed bool
	}{
		{"default limits: refused unread", "", false},
		{"sii_file raised: parsed, value cut", "[limits]\nsii_file = \"1GiB\"\n", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			state := filepath.Join(dir, "state")
			cfgPath := filepath.Join(dir, "cmord.toml")
			if err := os.WriteFile(cfgPath, []byte(childSIIConfig(t, w, dir, tc.limits)), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "CMORD_TEST_HUGE_CHILD="+cfgPath)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			var rep hugeChildReport
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil || rep.PeakKiB <= 0 {
				t.Fatalf("child report %q: %v", out, err)
			}
			t.Logf("peak resident memory %.1f MiB, digest %d bytes", float64(rep.PeakKiB)/1024, rep.DigestBytes)
			if rep.PeakKiB > memoryBoundMiB*1024 {
				t.Errorf("peak resident memory %.1f MiB, want under %d MiB", float64(rep.PeakKiB)/1024, memoryBoundMiB)
			}
			if rep.DigestBytes > 1<<20 {
				t.Errorf("digest of %d bytes: not bounded", rep.DigestBytes)
			}

			st, err := archive.Open(state)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			ctx := context.Background()
			fs, err := st.ListFiles(ctx, archive.FileFilter{Name: name})
			if err != nil || len(fs) != 1 {
				t.Fatalf("archived %+v %v", fs, err)
			}
			if read := fs[0].Hash != ""; read != tc.parsed {
				t.Errorf("file read (SHA-256 %q): %v, want %v", fs[0].Hash, read, tc.parsed)
			}
			if tc.parsed {
				if _, _, err := st.Blobs.StoredFile(fs[0].Hash); err != nil {
					t.Errorf("blob not stored: %v", err)
				}
			}
			es, err := st.Exceptions(ctx, archive.ExceptionFilter{})
			if err != nil || len(es) == 0 {
				t.Fatalf("exceptions %v %v", es, err)
			}
			sawCut := false
			for _, e := range es {
				for field, v := range map[string]string{"value": e.Value, "message": e.Message, "subject": e.Subject, "action": e.Action} {
					if len(v) > flows.MaxMessageLen+64 {
						t.Errorf("exception %d %s holds %d bytes", e.ID, field, len(v))
					}
				}
				if len(e.Value) > flows.MaxValueLen+64 {
					t.Errorf("exception %d value holds %d bytes", e.ID, len(e.Value))
				}
				if strings.Contains(e.Value+e.Message, "bytes)") {
					sawCut = true
				}
			}
			if tc.parsed && !sawCut {
				t.Errorf("no exception notes the size of the cut value: %+v", es)
			}
		})
	}
}

// childSIIConfig is the configuration of the child daemon: the test world's SII
// server, its own state directory (dir/state), as worldSpec writes a world's.
func childSIIConfig(t *testing.T, w *testWorld, dir, extra string) string {
	t.Helper()
	_, toml, err := worldSpec{roles: `["uscente"]`, extra: extra}.config(dir, w.srv.Port, filepath.Join(w.dir, "id_ed25519"), filepath.Join(w.dir, "known_hosts"))
	if err != nil {
		t.Fatal(err)
	}
	return toml
}
