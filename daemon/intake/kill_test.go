package intake

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Environment of the re-executed test binary that plays the daemon in the kill test.
const (
	envKillChild  = "INTAKE_KILL_CHILD"
	envKillDir    = "INTAKE_KILL_DIR"
	envKillLedger = "INTAKE_KILL_LEDGER"
)

func TestMain(m *testing.M) {
	if os.Getenv(envKillChild) == "1" {
		os.Exit(killChild())
	}
	os.Exit(m.Run())
}

// killChild runs a Watcher whose ProcessFunc appends "NAME recovered=BOOL" to a
// ledger with fsync, until SIGTERM (or SIGKILL from the parent).
func killChild() int {
	dir, ledgerPath := os.Getenv(envKillDir), os.Getenv(envKillLedger)
	ledger, err := os.OpenFile(ledgerPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	process := func(_ context.Context, c Claimed) (Outcome, error) {
		// One write(2) per line: a SIGKILL cannot split it.
		if _, err := fmt.Fprintf(ledger, "%s recovered=%v\n", c.Name, c.Recovered); err != nil {
			return Outcome{}, err
		}
		return Outcome{}, ledger.Sync()
	}
	w, err := New([]Folder{{Name: "kill", Path: dir, Settle: 20 * time.Millisecond, Retry: 50 * time.Millisecond}}, process, nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go func() {
		// Tell the parent that SIGTERM is now handled (and recovery is over).
		<-w.Ready()
		os.WriteFile(readyFile(ledgerPath, os.Getpid()), nil, 0o644)
	}()
	if err := w.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func readyFile(ledger string, pid int) string { return fmt.Sprintf("%s.ready.%d", ledger, pid) }

// TestKill9 drops 200 files while the "daemon" is SIGKILLed at random moments and
// restarted: in the end every file is in done/ exactly once, none is lost, and a file
// appears twice in the ledger only through a Recovered call.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	ledger := filepath.Join(t.TempDir(), "ledger")
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))

	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), envKillChild+"=1", envKillDir+"="+dir, envKillLedger+"="+ledger)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	const total, rounds = 200, 5
	next := 0
	for round := range rounds {
		child := start()
		for ; next < total*(round+1)/rounds; next++ {
			name := fmt.Sprintf("f%03d.csv", next)
			tmp := filepath.Join(dir, name+".part")
			must(t, os.WriteFile(tmp, []byte(name), 0o644))
			must(t, os.Rename(tmp, filepath.Join(dir, name)))
		}
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		must(t, child.Process.Signal(syscall.SIGKILL))
		_ = child.Wait()
	}

	child := start()
	deadline := time.Now().Add(60 * time.Second)
	for {
		done, _ := os.ReadDir(filepath.Join(dir, DoneDir))
		inprog, _ := os.ReadDir(filepath.Join(dir, InProgressDir))
		if len(done) >= total && len(inprog) == 0 {
			break
		}
		if time.Now().After(deadline) {
			child.Process.Kill()
			t.Fatalf("after 60s: %d done, %d in progress", len(done), len(inprog))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		if _, err := os.Stat(readyFile(ledger, child.Process.Pid)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			child.Process.Kill()
			t.Fatal("final child never became ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
	must(t, child.Process.Signal(syscall.SIGTERM))
	if err := child.Wait(); err != nil {
		t.Errorf("child after SIGTERM: %v", err)
	}

	done, err := os.ReadDir(filepath.Join(dir, DoneDir))
	must(t, err)
	inDone := map[string]bool{}
	for _, e := range done {
		inDone[e.Name()] = true
	}
	for i := range total {
		name := fmt.Sprintf("f%03d.csv", i)
		if !inDone[name] {
			t.Errorf("%s lost: not in done/", name)
		}
		delete(inDone, name)
	}
	for name := range inDone {
		t.Errorf("unexpected %s in done/ (a file finished twice?)", name)
	}
	for _, sub := range []string{"", InProgressDir, RejectedDir} {
		entries, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range entries {
			if !e.IsDir() {
				t.Errorf("left over: %s", filepath.Join(sub, e.Name()))
			}
		}
	}

	lf, err := os.Open(ledger)
	must(t, err)
	defer lf.Close()
	seen := map[string]int{}
	duplicates, recovered := 0, 0
	sc := bufio.NewScanner(lf)
	for sc.Scan() {
		name, flag, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			t.Fatalf("bad ledger line %q", sc.Text())
		}
		if flag == "recovered=true" {
			recovered++
		}
		if seen[name] > 0 {
			duplicates++
			if flag != "recovered=true" {
				t.Errorf("%s processed again without Recovered=true", name)
			}
		}
		seen[name]++
	}
	must(t, sc.Err())
	if len(seen) != total {
		t.Errorf("ledger has %d distinct files, want %d", len(seen), total)
	}
	t.Logf("ledger: %d distinct, %d recovered calls, %d duplicates (deduplicated by the archive)", len(seen), recovered, duplicates)
}
