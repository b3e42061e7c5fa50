package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/demo"
	"github.com/cmord/cmord/flows"
)

// demoVolatile are the parts of the demo's output that change from run to run (ports,
// dates, timestamps in file names, the temporary folder), with what replaces them.
var demoVolatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`127\.0\.0\.1:\d+`), "127.0.0.1:PORT"},
	{regexp.MustCompile(`\d{8}T\d{6}`), "AAAAMMGGThhmmss"},
	{regexp.MustCompile(`_\d{8}\.csv`), "_AAAAMMGG.csv"},
	{regexp.MustCompile(`\d{2}/\d{2}/\d{4}`), "GG/MM/AAAA"},
}

// TestDemoOnce runs `cmord demo --once` as a new user would and compares its
// narration with testdata/demo/once.txt (-update rewrites it). It also checks what a
// reader notices without a golden: no step repeats the same practice counts, the tour
// names every folder the demo configures, no log line among the tour (the log is in
// the demo's log file), no record dated after now; then that a second run replays the
// tour, that the running demo serves metrics and survives SIGHUP, and --reset.
func TestDemoOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo runs seven daemon cycles (about 15 s)")
	}
	dir := filepath.Join(t.TempDir(), "cmord-demo")
	var out, errOut bytes.Buffer
	if code := run([]string{"demo", "--once", "--dir", dir}, nil, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	got := strings.ReplaceAll(out.String(), dir, "DEMO")
	for _, v := range demoVolatile {
		got = v.re.ReplaceAllString(got, v.with)
	}

	prev := ""
	for _, line := range strings.Split(got, "\n") {
		if strings.HasPrefix(line, "   practices now: ") {
			if line == prev {
				t.Errorf("the same counts printed twice in a row: %q", line)
			}
			prev = line
		}
	}
	ents, err := os.ReadDir(filepath.Join(dir, "in"))
	if err != nil {
		t.Fatal(err)
	}
	tour := got[strings.Index(got, "Where things are:"):]
	for _, e := range ents {
		if e.IsDir() && !strings.Contains(tour, e.Name()) {
			t.Errorf("the tour does not mention the drop folder in/%s:\n%s", e.Name(), tour)
		}
	}
	goldenCLI(t, "demo", "once.txt", []byte(got))

	// The tour is the terminal's; the daemon's log went to the demo's log file.
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "time=") || strings.Contains(line, "level=") {
			t.Errorf("a log line among the tour: %q", line)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, demo.LogFile)); err != nil || !strings.Contains(string(b), `msg="file processed"`) {
		t.Errorf("the demo's log file lacks the daemon's records (%v):\n%s", err, b)
	}
	noFutureRecords(t, dir)

	// A second run replays the first run's tour, then does one more cycle.
	var out2 bytes.Buffer
	if code := run([]string{"demo", "--once", "--dir", dir}, nil, &out2, &out2); code != exitOK {
		t.Fatalf("second run: exit %d\n%s", code, out2.String())
	}
	for _, want := range []string{"The tour of the first run in " + dir, "1. Billing drops morosi_", "6. The simulated clock reaches",
		"This run: one more cycle on the same state", "Where things are:"} {
		if !strings.Contains(out2.String(), want) {
			t.Errorf("second run lacks %q:\n%s", want, out2.String())
		}
	}

	// The demo without --once keeps running, and what its tour says holds when
	// followed: the metrics and health endpoints answer on the address it gives, the
	// digest is in the mail folder it names, a file dropped where it says is taken,
	// SIGHUP re-reads the configuration (it does not die), and Ctrl-C stops it cleanly.
	t.Run("running", func(t *testing.T) { demoRunning(t, dir) })

	// --reset starts over: the script runs again from step 1 on a fresh state.
	var out3 bytes.Buffer
	if code := run([]string{"demo", "--once", "--reset", "--dir", dir}, nil, &out3, &out3); code != exitOK {
		t.Fatalf("--reset: exit %d\n%s", code, out3.String())
	}
	if strings.Contains(out3.String(), "The tour of the first run") || !strings.Contains(out3.String(), "1. Billing drops morosi_") ||
		!strings.Contains(out3.String(), "archived so far      12 files in") {
		t.Errorf("--reset did not start over:\n%s", out3.String())
	}
	// --reset refuses a folder the demo did not make.
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "cmord.toml"), []byte("state_dir = \"/var/lib/cmord\"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	var out4 bytes.Buffer
	if code := run([]string{"demo", "--once", "--reset", "--dir", other}, nil, &out4, &out4); code == exitOK || !strings.Contains(out4.String(), "not written by `cmord demo`") {
		t.Errorf("--reset on a foreign folder: exit %d\n%s", code, out4.String())
	}
}

// noFutureRecords: the script's simulated clock stays behind the real one, so no file
// of the archive was received or processed, and no practice changed state, after now.
func noFutureRecords(t *testing.T, dir string) {
	t.Helper()
	st, err := archive.OpenReadOnly(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	files, err := st.ListFiles(context.Background(), archive.FileFilter{})
	if err != nil || len(files) == 0 {
		t.Fatalf("archive files: %d, %v", len(files), err)
	}
	for _, f := range files {
		if f.ReceivedAt.After(now) || f.ProcessedAt.After(now) {
			t.Errorf("file %s: received %s, processed %s: after now (%s)", f.Name, f.ReceivedAt, f.ProcessedAt, now)
		}
	}
	ps, err := st.QueryPractices(context.Background(), archive.PracticeFilter{})
	if err != nil || len(ps) == 0 {
		t.Fatalf("practices: %d, %v", len(ps), err)
	}
	for _, p := range ps {
		if p.StateSince.After(now) || p.UpdatedAt.After(now) {
			t.Errorf("practice %s: %s since %s (updated %s): after now (%s)", p.Point, p.State, p.StateSince, p.UpdatedAt, now)
		}
	}
}

func demoRunning(t *testing.T, dir string) {
	cmd, out := startCmord(t, "demo", "--dir", dir)
	waitFor(t, out, "The daemon is running")
	m := regexp.MustCompile(`metrics +http://(127\.0\.0\.1:\d+)/metrics and /healthz\n`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("the tour gives no metrics address:\n%s", out.String())
	}
	// Each address the tour gives answers with what it says it serves.
	for _, ep := range []struct{ path, want string }{
		{"/metrics", "process_start_time_seconds"},
		{"/healthz", "ok"},
	} {
		var body string
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			resp, err := http.Get("http://" + m[1] + ep.path)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					body = string(b)
					break
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !strings.Contains(body, ep.want) {
			t.Errorf("GET http://%s%s: want %q:\n%.500s", m[1], ep.path, ep.want, body)
		}
	}
	// "the compliance digest goes out by mail (see the mail folder)", "mail sent <dir>".
	mm := regexp.MustCompile(`mail sent +(\S+) \(one \.eml per message\)`).FindStringSubmatch(out.String())
	if mm == nil {
		t.Fatalf("the tour names no mail folder:\n%s", out.String())
	}
	mailDir := mm[1]
	if !filepath.IsAbs(mailDir) {
		mailDir = filepath.Join(mustWd(), mailDir)
	}
	emls, _ := filepath.Glob(filepath.Join(mailDir, "*.eml"))
	digestFound, firstWhole := false, false
	for _, e := range emls {
		if b, err := os.ReadFile(e); err == nil && strings.Contains(string(b), "Subject: =?UTF-8?q?Riepilogo_CMOR") {
			digestFound = true
			// The first digest covers the script, dated in the recent past, not
			// the last 24 hours of the real clock only (it said "no file in the
			// period"). Quoted-printable: soft line breaks joined.
			body := strings.NewReplacer("=\r\n", "", "=\n", "").Replace(string(b))
			if strings.Contains(body, "primo riepilogo: dal primo record dell'archivio") && strings.Contains(body, "morosi_") &&
				strings.Contains(body, "Nuove eccezioni (5)") && !strings.Contains(body, "Nessun file nel periodo") {
				firstWhole = true
			}
		}
	}
	if !digestFound {
		t.Errorf("no digest among the mail in %s (%v)", mailDir, emls)
	} else if !firstWhole {
		t.Errorf("no digest in %s covers the tour's script since the archive's first record, with its files and 5 new exceptions", mailDir)
	}
	// The preview the tour suggests next shows what is new since that digest, and its
	// period line says so (it read as a period covering nothing).
	var prev bytes.Buffer
	if code := run([]string{"digest", "--preview", "--lang", "en", "--config", filepath.Join(dir, "cmord.toml")}, nil, &prev, &prev); code != exitOK {
		t.Errorf("digest --preview: exit %d\n%s", code, prev.String())
	} else if !strings.Contains(prev.String(), "(since the end of the last digest sent)") {
		t.Errorf("digest --preview after the demo: the period line does not say where it starts:\n%.400s", prev.String())
	}
	// "Drop billing extracts into the folders of <in> (morosi, ...)": a file dropped
	// there is taken (this one is refused, with its reason).
	dm := regexp.MustCompile(`Drop billing extracts into the folders of (\S+) \(morosi`).FindStringSubmatch(out.String())
	if dm == nil {
		t.Fatalf("the tour does not say where to drop files:\n%s", out.String())
	}
	if err := os.WriteFile(filepath.Join(dm[1], "morosi", "not-an-extract.csv"), []byte("hello\r\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	reason := filepath.Join(dm[1], "morosi", "rejected", "not-an-extract.csv.reason.txt")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(reason); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a file dropped in %s/morosi was not taken within 30 s", dm[1])
		}
	}
	logPath := filepath.Join(dir, demo.LogFile)
	logHas := func(what string) bool {
		b, _ := os.ReadFile(logPath)
		return strings.Count(string(b), what) > 0
	}
	before, _ := os.ReadFile(logPath)
	reloads := strings.Count(string(before), `msg="configuration reloaded"`)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(logPath)
		if strings.Count(string(b), `msg="configuration reloaded"`) > reloads {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reload after SIGHUP; log:\n%s\noutput:\n%s", b, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// "Ctrl-C to stop".
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil || !strings.Contains(out.String(), "\nStopped. ") {
		t.Fatalf("cmord demo after SIGHUP and Ctrl-C: %v\n%s", err, out.String())
	}
	if !logHas(`msg=stopped`) {
		t.Errorf("the demo's daemon did not stop cleanly")
	}
	if strings.Contains(out.String(), "level=") {
		t.Errorf("log lines on the demo's terminal:\n%s", out.String())
	}
}

// The demo's simulated month ends on a first of the month at 09:00 in Rome, at least
// an hour before now, whatever day and hour now is (the first of the month itself,
// New Year's morning, the last day of a month).
func TestDemoTimeline(t *testing.T) {
	rome := func(y int, m time.Month, d, h, min int) time.Time {
		return time.Date(y, m, d, h, min, 0, 0, flows.Rome)
	}
	tests := []struct {
		now, wantEnd time.Time
	}{
		{rome(2026, 12, 2, 23, 50), rome(2026, 12, 1, 9, 0)},
		{rome(2026, 12, 1, 10, 0), rome(2026, 12, 1, 9, 0)},
		{rome(2026, 12, 1, 9, 30), rome(2026, 11, 1, 9, 0)},
		{rome(2027, 1, 1, 0, 5), rome(2026, 12, 1, 9, 0)},
		{rome(2026, 3, 31, 23, 59), rome(2026, 3, 1, 9, 0)},
	}
	for _, tt := range tests {
		start, end := demoTimeline(tt.now)
		if !end.Equal(tt.wantEnd) {
			t.Errorf("now %s: month end %s, want %s", tt.now, end, tt.wantEnd)
		}
		if !start.Before(end) || tt.now.Sub(end) < time.Hour {
			t.Errorf("now %s: start %s, end %s: want start < end <= now - 1h", tt.now, start, end)
		}
	}
}

// TestDemoInterruptedTour: Ctrl-C during the scripted tour stops the demo at once,
// exit 0, saying how to go on or start over, and not as an error ("context canceled").
func TestDemoInterruptedTour(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo's first cycles")
	}
	cmd, out := startCmord(t, "demo", "--dir", filepath.Join(t.TempDir(), "cmord-demo"))
	// Step 2 of 7: the tour has five more daemon cycles to go (each polls the SII
	// twice, seconds apart), so the interrupt lands in the middle of it.
	waitFor(t, out, "2. The SII answers")
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	got := out.String()
	if err != nil || !strings.Contains(got, "Interrupted during the tour") || strings.Contains(got, "context canceled") ||
		strings.Contains(got, "The daemon is running") {
		t.Errorf("Ctrl-C during the tour: %v\n%s", err, got)
	}
}
