package sftpx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmord/cmord/daemon/sftpx/sshdtest"
	"golang.org/x/crypto/ssh"
)

func TestRoundTrip(t *testing.T) {
	bothBackends(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		b.mkdir(t, "out")
		c := NewClient(b.ep, testLogger(t))
		defer c.Close()
		for _, size := range []int{0, 1, 4096, 32768, 32769, 3<<20 + 17} {
			name := fmt.Sprintf("flow_%d.csv", size)
			data := randomBytes(t, size)
			res, err := c.Upload(ctx, bytes.NewReader(data), int64(size), "out", name)
			if err != nil {
				t.Fatalf("upload %d: %v", size, err)
			}
			if res.AlreadyThere || res.Size != int64(size) || res.RemotePath != "out/"+name {
				t.Errorf("upload result %+v", res)
			}
			if got, err := os.ReadFile(filepath.Join(b.root, "out", name)); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("server copy of %s differs (err %v)", name, err)
			}
			local, n, err := c.Download(ctx, "out/"+name, t.TempDir(), 0)
			if err != nil || n != int64(size) {
				t.Fatalf("download %s: %d %v", name, n, err)
			}
			if got, _ := os.ReadFile(local); !bytes.Equal(got, data) {
				t.Fatalf("downloaded %s differs", name)
			}
		}
		if c.LastContact().IsZero() || c.Healthy() != nil {
			t.Errorf("last contact %v, healthy %v", c.LastContact(), c.Healthy())
		}
		// A remote file that does not exist is an error, not an empty file.
		if _, _, err := c.Download(ctx, "out/missing", t.TempDir(), 0); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("download of a missing file: %v", err)
		}
	})
}

func TestListIgnoresTempNames(t *testing.T) {
	bothBackends(t, func(t *testing.T, b backend) {
		in := b.mkdir(t, "in")
		for _, n := range []string{"A.csv", "b.xml", ".hidden", "c.part", "d.PARTIAL", "e.filepart", "f.tmp", "g~", ".A.csv.part"} {
			os.WriteFile(filepath.Join(in, n), []byte(n), 0o644)
		}
		os.Mkdir(filepath.Join(in, "sub"), 0o755)
		c := NewClient(b.ep, testLogger(t))
		defer c.Close()
		list, err := c.List(context.Background(), "in")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, f := range list {
			names = append(names, f.Name)
			if f.Size != int64(len(f.Name)) || f.ModTime.IsZero() {
				t.Errorf("%+v", f)
			}
		}
		if want := []string{"A.csv", "b.xml"}; !reflect.DeepEqual(names, want) {
			t.Errorf("listed %v, want %v", names, want)
		}
	})
}

func TestCompletion(t *testing.T) {
	bothBackends(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		in := b.mkdir(t, "in")
		for _, n := range []string{"m.csv", "d.csv", "k.csv", "x.csv"} {
			os.WriteFile(filepath.Join(in, n), []byte(n), 0o644)
		}
		c := NewClient(b.ep, testLogger(t))
		defer c.Close()
		for _, step := range []struct {
			file, policy, moveTo string
			gone                 bool
			moved                string
		}{
			{"in/m.csv", "move", "done", true, "in/done/m.csv"},
			{"in/m.csv", "move", "done", true, "in/done/m.csv"}, // again: already done, not an error
			{"in/d.csv", "delete", "", true, ""},
			{"in/d.csv", "delete", "", true, ""},
			{"in/k.csv", "none", "", false, ""},
		} {
			if err := c.Complete(ctx, step.file, step.policy, step.moveTo); err != nil {
				t.Fatalf("%+v: %v", step, err)
			}
			_, err := os.Stat(filepath.Join(b.root, step.file))
			if gone := errors.Is(err, os.ErrNotExist); gone != step.gone {
				t.Errorf("%+v: gone=%v", step, gone)
			}
			if step.moved != "" {
				if got, _ := os.ReadFile(filepath.Join(b.root, step.moved)); string(got) != filepath.Base(step.moved) {
					t.Errorf("moved content %q", got)
				}
			}
		}
		// move never overwrites
		os.WriteFile(filepath.Join(in, "done", "x.csv"), []byte("older"), 0o644)
		var ee *ExistsError
		if err := c.Complete(ctx, "in/x.csv", "move", "done"); !errors.As(err, &ee) {
			t.Errorf("move over an existing file: %v", err)
		}
		if got, _ := os.ReadFile(filepath.Join(in, "done", "x.csv")); string(got) != "older" {
			t.Errorf("existing file overwritten: %q", got)
		}
	})
}

// TestAtomicUpload watches the server's directory as tightly as it can during a large
// upload: the final name must never show a partial file.
func TestAtomicUpload(t *testing.T) {
	bothBackends(t, func(t *testing.T, b backend) {
		out := b.mkdir(t, "out")
		const size = 24 << 20
		data := randomBytes(t, size)
		c := NewClient(b.ep, testLogger(t))
		defer c.Close()
		var stop atomic.Bool
		var sawTemp atomic.Bool
		partial := make(chan string, 1)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				entries, _ := os.ReadDir(out)
				for _, e := range entries {
					if e.Name() == ".flow.xml.part" {
						sawTemp.Store(true)
					}
					if e.Name() != "flow.xml" {
						continue
					}
					if fi, err := os.Stat(filepath.Join(out, e.Name())); err == nil && fi.Size() != size {
						select {
						case partial <- fmt.Sprintf("final name with %d of %d bytes", fi.Size(), size):
						default:
						}
					}
				}
			}
		}()
		res, err := c.Upload(context.Background(), bytes.NewReader(data), size, "out", "flow.xml")
		stop.Store(true)
		wg.Wait()
		if err != nil || res.AlreadyThere {
			t.Fatalf("%+v %v", res, err)
		}
		select {
		case p := <-partial:
			t.Fatalf("a reader saw a partial file: %s", p)
		default:
		}
		if !sawTemp.Load() {
			t.Errorf("the watcher never saw the temp name: did it watch at all?")
		}
		if entries, _ := os.ReadDir(out); len(entries) != 1 {
			t.Errorf("left in out/: %v", entries)
		}
	})
}

func TestExistingRemoteFile(t *testing.T) {
	bothBackends(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		out := b.mkdir(t, "out")
		ours := []byte("our flow content\n")
		tests := []struct {
			name      string
			existing  string // content of the final name before the upload; "" = none
			leftover  bool   // a temp file from a crashed attempt
			overwrite bool
			wantThere bool
			wantExist bool
			final     string
		}{
			{name: "other content kept", existing: "their content\n", wantExist: true, final: "their content\n"},
			{name: "same size other content kept", existing: "OUR FLOW CONTENT\n", wantExist: true, final: "OUR FLOW CONTENT\n"},
			{name: "ours after crash post-rename", existing: string(ours), leftover: true, wantThere: true, final: string(ours)},
			{name: "leftover temp overwritten", leftover: true, final: string(ours)},
			{name: "overwrite allowed", existing: "their content\n", overwrite: true, final: string(ours)},
		}
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				name := fmt.Sprintf("f%d.xml", i)
				if tc.existing != "" {
					os.WriteFile(filepath.Join(out, name), []byte(tc.existing), 0o644)
				}
				if tc.leftover {
					os.WriteFile(filepath.Join(out, "."+name+".part"), []byte("half a fl"), 0o644)
				}
				ep := b.ep
				ep.Overwrite = tc.overwrite
				c := NewClient(ep, testLogger(t))
				defer c.Close()
				res, err := c.Upload(ctx, bytes.NewReader(ours), int64(len(ours)), "out", name)
				var ee *ExistsError
				if got := errors.As(err, &ee); got != tc.wantExist {
					t.Fatalf("ExistsError=%v, want %v (err %v)", got, tc.wantExist, err)
				}
				if !tc.wantExist && err != nil {
					t.Fatal(err)
				}
				if res.AlreadyThere != tc.wantThere {
					t.Errorf("AlreadyThere=%v", res.AlreadyThere)
				}
				if got, _ := os.ReadFile(filepath.Join(out, name)); string(got) != tc.final {
					t.Errorf("final content %q, want %q", got, tc.final)
				}
				if _, err := os.Stat(filepath.Join(out, "."+name+".part")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("temp file left behind: %v", err)
				}
			})
		}
	})
}

func TestStabilityTracker(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	f := func(name string, size int64, sec int) RemoteFile {
		return RemoteFile{Name: name, Size: size, ModTime: t0.Add(time.Duration(sec) * time.Second)}
	}
	tests := []struct {
		name     string
		n        int
		listings [][]RemoteFile
		want     [][]string // stable names after each listing
	}{
		{"two identical listings", 2, [][]RemoteFile{{f("a", 1, 0)}, {f("a", 1, 0)}, {f("a", 1, 0)}},
			[][]string{nil, {"a"}, {"a"}}},
		{"growing file waits", 2, [][]RemoteFile{{f("a", 1, 0)}, {f("a", 2, 1)}, {f("a", 2, 1)}},
			[][]string{nil, nil, {"a"}}},
		{"mtime change restarts", 2, [][]RemoteFile{{f("a", 5, 0)}, {f("a", 5, 9)}, {f("a", 5, 9)}},
			[][]string{nil, nil, {"a"}}},
		{"absent then back restarts", 2, [][]RemoteFile{{f("a", 1, 0)}, {}, {f("a", 1, 0)}, {f("a", 1, 0)}},
			[][]string{nil, nil, nil, {"a"}}},
		{"three listings", 3, [][]RemoteFile{{f("b", 1, 0), f("a", 1, 0)}, {f("a", 1, 0), f("b", 1, 0)}, {f("b", 1, 0), f("a", 1, 0)}},
			[][]string{nil, nil, {"a", "b"}}},
		{"n=1 immediate", 1, [][]RemoteFile{{f("a", 1, 0)}}, [][]string{{"a"}}},
		{"default n", 0, [][]RemoteFile{{f("a", 1, 0)}, {f("a", 1, 0)}}, [][]string{nil, {"a"}}},
		{"independent files", 2, [][]RemoteFile{{f("a", 1, 0), f("b", 1, 0)}, {f("a", 1, 0), f("b", 2, 0)}, {f("a", 1, 0), f("b", 2, 0)}},
			[][]string{nil, {"a"}, {"a", "b"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewStabilityTracker(tc.n)
			for i, l := range tc.listings {
				var got []string
				for _, s := range tr.Observe(l) {
					got = append(got, s.Name)
				}
				if !reflect.DeepEqual(got, tc.want[i]) {
					t.Errorf("listing %d: stable %v, want %v", i, got, tc.want[i])
				}
			}
		})
	}
}

func TestIsTempName(t *testing.T) {
	for name, want := range map[string]bool{"a.csv": false, ".a.csv": true, "a.part": true, "a.Partial": true,
		"a.filepart": true, "a.TMP": true, "a~": true, "partial.csv": false, "tmp": false} {
		if got := IsTempName(name); got != want {
			t.Errorf("IsTempName(%q) = %v", name, got)
		}
	}
}

func TestHostKeyFailsClosed(t *testing.T) {
	bothBackends(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		dir := t.TempDir()
		other, _ := clientKey(t, dir) // any key that is not the server's
		otherPub := mustPublic(t, other)
		addr := net.JoinHostPort(b.ep.Host, fmt.Sprint(b.ep.Port))
		wrong := filepath.Join(dir, "wrong_known_hosts")
		os.WriteFile(wrong, []byte(knownLine(addr, otherPub)+"\n"), 0o600)
		empty := filepath.Join(dir, "empty_known_hosts")
		os.WriteFile(empty, nil, 0o600)
		otherHost := filepath.Join(dir, "other_host_known_hosts")
		os.WriteFile(otherHost, []byte(knownLine("127.0.0.1:1", otherPub)+"\n"), 0o600)

		for _, tc := range []struct {
			name, known string
			mismatch    bool
		}{{"mismatch", wrong, true}, {"unknown empty file", empty, false}, {"unknown host", otherHost, false}} {
			t.Run(tc.name, func(t *testing.T) {
				ep := b.ep
				ep.KnownHosts = tc.known
				_, err := Dial(ctx, ep, nil)
				var he *HostKeyError
				if !errors.As(err, &he) {
					t.Fatalf("want *HostKeyError, got %v", err)
				}
				if he.Mismatch != tc.mismatch || !strings.HasPrefix(he.Fingerprint, "SHA256:") {
					t.Errorf("%+v", he)
				}
				if tc.mismatch && (len(he.Expected) != 1 || !strings.Contains(he.Expected[0], ssh.FingerprintSHA256(otherPub))) {
					t.Errorf("expected %v", he.Expected)
				}
				// through the Client too, and the breaker keeps saying why
				c := NewClient(ep, nil)
				defer c.Close()
				for range 2 {
					if _, err := c.List(ctx, "."); !errors.As(err, &he) {
						t.Errorf("client: %v", err)
					}
				}
			})
		}
		t.Run("no known_hosts", func(t *testing.T) {
			ep := b.ep
			ep.KnownHosts = filepath.Join(dir, "absent")
			var ce *ConnectError
			if _, err := Dial(ctx, ep, nil); !errors.As(err, &ce) {
				t.Errorf("missing known_hosts: %v", err)
			}
			ep.KnownHosts = ""
			if _, err := Dial(ctx, ep, nil); !errors.As(err, &ce) {
				t.Errorf("no known_hosts configured: %v", err)
			}
		})
		t.Run("trust on first use records, then verifies", func(t *testing.T) {
			ep := b.ep
			ep.KnownHosts = filepath.Join(dir, "tofu_known_hosts")
			ep.InsecureTOFU = true
			for range 2 {
				conn, err := Dial(ctx, ep, nil)
				if err != nil {
					t.Fatal(err)
				}
				conn.Close()
			}
			if lines, _ := os.ReadFile(ep.KnownHosts); strings.Count(string(lines), "\n") != 1 {
				t.Errorf("recorded %q", lines)
			}
			ep.KnownHosts = wrong // TOFU never accepts a changed key
			var he *HostKeyError
			if _, err := Dial(ctx, ep, nil); !errors.As(err, &he) || !he.Mismatch {
				t.Errorf("TOFU with a changed key: %v", err)
			}
		})
	})
}

func mustPublic(t testing.TB, keyFile string) ssh.PublicKey {
	s, err := loadSigner(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return s.PublicKey()
}

func knownLine(addr string, k ssh.PublicKey) string {
	host, port, _ := net.SplitHostPort(addr)
	if port != "22" {
		host = "[" + host + "]:" + port
	}
	return host + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// TestHostKeyAlgorithmsFromKnownHosts: the server has ed25519, ECDSA and RSA keys but
// known_hosts records only one; the client must negotiate that one (golang/go#29286).
func TestHostKeyAlgorithmsFromKnownHosts(t *testing.T) {
	b := startSSHD(t, sshdtest.Options{HostKeyTypes: []string{"ed25519", "ecdsa", "rsa"}})
	ctx := context.Background()
	dir := t.TempDir()
	for i, typ := range []string{"ed25519", "ecdsa", "rsa"} {
		t.Run(typ, func(t *testing.T) {
			known := filepath.Join(dir, typ+"_known_hosts")
			os.WriteFile(known, []byte(b.sshd.KnownHostsLine(b.sshd.HostKeys[i])+"\n"), 0o600)
			ep := b.ep
			ep.KnownHosts = known
			conn, err := Dial(ctx, ep, nil)
			if err != nil {
				t.Fatalf("known_hosts with only %s: %v", typ, err)
			}
			conn.Close()
			algos, err := HostKeyAlgorithmsFor(known, b.sshd.Addr)
			if err != nil || len(algos) == 0 || !strings.Contains(algos[0], strings.TrimPrefix(b.sshd.HostKeys[i].Type(), "ssh-")[:3]) {
				t.Errorf("algorithms %v %v", algos, err)
			}
		})
	}
	// Without the fix, x/crypto's default preference (ECDSA first) fails on an RSA-only known_hosts.
	ep := b.ep
	ep.KnownHosts = filepath.Join(dir, "rsa_known_hosts")
	ep.HostKeyAlgorithms = []string{ssh.KeyAlgoECDSA256, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoED25519}
	var he *HostKeyError
	if _, err := Dial(ctx, ep, nil); !errors.As(err, &he) || !he.Mismatch {
		t.Errorf("an explicit ECDSA-first list should reproduce the mismatch: %v", err)
	}
}

func TestFetchHostKey(t *testing.T) {
	b := startSSHD(t, sshdtest.Options{HostKeyTypes: []string{"ed25519", "ecdsa", "rsa"}})
	keys, err := FetchHostKey(context.Background(), b.sshd.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 {
		t.Fatalf("got %d keys: %+v", len(keys), keys)
	}
	for i, k := range keys {
		want := b.sshd.HostKeys[i]
		if k.Type != want.Type() || k.Fingerprint != ssh.FingerprintSHA256(want) || k.KnownHostsLine != b.sshd.KnownHostsLine(want) {
			t.Errorf("key %d: %+v, want %s %s", i, k, want.Type(), ssh.FingerprintSHA256(want))
		}
	}
	// The printed lines work as a known_hosts file.
	known := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(known, []byte(keys[2].KnownHostsLine+"\n"), 0o600)
	ep := b.ep
	ep.KnownHosts = known
	conn, err := Dial(context.Background(), ep, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()

	in := startInProcess(t)
	keys, err = FetchHostKey(context.Background(), in.srv.Addr, 5*time.Second)
	if err != nil || len(keys) != 1 || keys[0].Fingerprint != ssh.FingerprintSHA256(in.srv.HostKey) {
		t.Errorf("in-process: %+v %v", keys, err)
	}
	// No server: the connection's error once, not once per key family.
	_, err = FetchHostKey(context.Background(), "127.0.0.1:1", time.Second)
	if err == nil || !strings.Contains(err.Error(), "connection refused") || strings.Count(err.Error(), "127.0.0.1:1") != 2 ||
		strings.Contains(err.Error(), ssh.KeyAlgoED25519) {
		t.Errorf("no server: want the dial error once, got %v", err)
	}
}

// silentServer accepts TCP connections and never says anything.
func silentServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

func TestDialTimeout(t *testing.T) {
	addr := silentServer(t)
	host, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	key, _ := clientKey(t, dir)
	known := filepath.Join(dir, "known_hosts")
	os.WriteFile(known, nil, 0o600)
	ep := baseEndpoint("silent", host, 0, "u", key, known)
	fmt.Sscan(port, &ep.Port)
	ep.DialTimeout = 300 * time.Millisecond
	start := time.Now()
	_, err := Dial(context.Background(), ep, nil)
	elapsed := time.Since(start)
	var ce *ConnectError
	if !errors.As(err, &ce) {
		t.Fatalf("want *ConnectError, got %v", err)
	}
	if elapsed > ep.DialTimeout+2*time.Second {
		t.Errorf("dial took %s with a %s timeout", elapsed, ep.DialTimeout)
	}
	// and the caller's context is honoured too
	ep.DialTimeout = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := Dial(ctx, ep, nil); err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("ctx: %v after %s", err, time.Since(start))
	}
}

// TestCircuitBreaker: a dead endpoint costs one dial per backoff period; calls in
// between fail at once; when it comes back the client recovers by itself.
func TestCircuitBreaker(t *testing.T) {
	b := startInProcess(t)
	ep := b.ep
	b.srv.Close()
	ep.BackoffMin, ep.BackoffMax = 300*time.Millisecond, 300*time.Millisecond
	c := NewClient(ep, testLogger(t))
	defer c.Close()
	ctx := context.Background()
	var ce *ConnectError
	if _, err := c.List(ctx, "."); !errors.As(err, &ce) || errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("first call: %v", err)
	}
	if c.Healthy() == nil {
		t.Error("healthy after a failed dial")
	}
	start := time.Now()
	if _, err := c.List(ctx, "."); !errors.Is(err, ErrCircuitOpen) || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("second call: %v after %s", err, time.Since(start))
	}
	// the server comes back on the same port
	srv := mustRestartInProcess(t, b)
	defer srv.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := c.List(ctx, ".")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c.Healthy() != nil || c.LastContact().IsZero() {
		t.Errorf("after recovery: %v %v", c.Healthy(), c.LastContact())
	}
}

// TestKillAndRestart: sshd is SIGKILLed in the middle of a series of uploads (one of
// them large, in flight) and comes back; every file ends up on the server exactly
// once, complete, and no temp file remains.
func TestKillAndRestart(t *testing.T) {
	b := startSSHD(t, sshdtest.Options{})
	out := b.mkdir(t, "out")
	c := NewClient(b.ep, testLogger(t))
	defer c.Close()
	ctx := context.Background()
	files := map[string][]byte{}
	for i := range 12 {
		size := 2048
		if i == 6 {
			size = 48 << 20
		}
		files[fmt.Sprintf("f%02d.xml", i)] = randomBytes(t, size)
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range files {
			if !yield(n) {
				return
			}
		}
	})
	killed := make(chan struct{})
	attempts := 0
	for _, name := range names {
		data := files[name]
		var r *bytes.Reader
		var kill func()
		if name == "f06.xml" {
			// the server dies once a third of the big file has been read
			kill = func() {
				b.sshd.Kill()
				close(killed)
				go func() { time.Sleep(200 * time.Millisecond); b.sshd.Restart() }()
			}
		}
		for {
			attempts++
			r = bytes.NewReader(data)
			var src interface {
				Read([]byte) (int, error)
				Seek(int64, int) (int64, error)
			} = r
			if kill != nil {
				src = &triggerReader{Reader: r, at: int64(len(data) / 3), fire: kill}
				kill = nil
			}
			_, err := c.Upload(ctx, src, int64(len(data)), "out", name)
			if err == nil {
				break
			}
			t.Logf("upload %s: %v (retrying)", name, err)
			if attempts > 200 {
				t.Fatalf("gave up: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	select {
	case <-killed:
	default:
		t.Fatal("the server was never killed")
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != len(files) {
		t.Errorf("%d entries in out/, want %d: %v", len(entries), len(files), entries)
	}
	for name, data := range files {
		if got, err := os.ReadFile(filepath.Join(out, name)); err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: wrong content (%d bytes, err %v)", name, len(got), err)
		}
	}
}

// triggerReader calls fire once when the reading reaches at.
type triggerReader struct {
	*bytes.Reader
	at   int64
	fire func()
	done bool
}

func (r *triggerReader) Read(p []byte) (int, error) {
	if !r.done && r.Size()-int64(r.Len()) >= r.at {
		r.done = true
		r.fire()
	}
	return r.Reader.Read(p)
}

// TestStalledServer: the server stops answering mid-transfer (its session processes
// are SIGSTOPped, the TCP path stays up). A bare connection fails after about
// IOTimeout instead of hanging; a Client retries on a new connection and finishes.
func TestStalledServer(t *testing.T) {
	b := startSSHD(t, sshdtest.Options{})
	b.mkdir(t, "out")
	defer b.sshd.Resume()
	ep := b.ep
	ep.IOTimeout = 700 * time.Millisecond
	ep.ConcurrentWrites = false
	data := randomBytes(t, 32<<20)

	t.Run("bare connection errors", func(t *testing.T) {
		conn, err := Dial(context.Background(), ep, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		f, err := conn.SFTP.Create("out/stall.bin")
		if err != nil {
			t.Fatal(err)
		}
		var pausedAt time.Time
		src := &triggerReader{Reader: bytes.NewReader(data), at: 1 << 20, fire: func() { b.sshd.Pause(); pausedAt = time.Now() }}
		done := make(chan error, 1)
		go func() { _, err := f.ReadFrom(src); done <- err }()
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("the upload succeeded against a frozen server")
			}
			if d := time.Since(pausedAt); d > ep.IOTimeout+5*time.Second {
				t.Errorf("failed %s after the stall", d)
			}
			select {
			case <-conn.Done():
			case <-time.After(5 * time.Second):
				t.Error("connection not marked broken")
			}
		case <-time.After(20 * time.Second):
			t.Fatal("hung on a frozen server")
		}
		b.sshd.Resume()
	})
	t.Run("client retries on a new connection", func(t *testing.T) {
		c := NewClient(ep, testLogger(t))
		defer c.Close()
		if _, err := c.List(context.Background(), "out"); err != nil { // connect first
			t.Fatal(err)
		}
		src := &triggerReader{Reader: bytes.NewReader(data), at: 1 << 20, fire: b.sshd.Pause}
		res, err := c.Upload(context.Background(), src, int64(len(data)), "out", "retried.bin")
		b.sshd.Resume()
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(filepath.Join(b.root, "out", "retried.bin")); !bytes.Equal(got, data) || res.AlreadyThere {
			t.Errorf("retried upload: %d bytes, %+v", len(got), res)
		}
	})
}

// TestDownloadSizeLimit: a download bounded by maxSize takes a file up to the limit
// whole, and refuses one over it by its Stat size with a *TooBigError naming size and
// limit, leaving nothing in the local directory; the large (streamed) path too.
func TestDownloadSizeLimit(t *testing.T) {
	bothBackends(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		b.mkdir(t, "out")
		c := NewClient(b.ep, testLogger(t))
		defer c.Close()
		tests := []struct {
			name      string
			size, max int64
			refused   bool
		}{
			{name: "no limit", size: 4096},
			{name: "at the limit", size: 4096, max: 4096},
			{name: "one byte over", size: 4097, max: 4096, refused: true},
			{name: "streamed, at the limit", size: smallFile + 10, max: smallFile + 10},
			{name: "streamed, over", size: 2*smallFile + 1, max: smallFile + 10, refused: true},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				data := randomBytes(t, int(tc.size))
				name := strings.ReplaceAll(tc.name, " ", "_") + ".bin"
				if err := os.WriteFile(filepath.Join(b.root, "out", name), data, 0o644); err != nil {
					t.Fatal(err)
				}
				dir := t.TempDir()
				local, n, err := c.Download(ctx, "out/"+name, dir, tc.max)
				var tb *TooBigError
				if !tc.refused {
					if err != nil || n != tc.size {
						t.Fatalf("download: %d %v", n, err)
					}
					if got, _ := os.ReadFile(local); !bytes.Equal(got, data) {
						t.Fatal("downloaded content differs")
					}
					return
				}
				if !errors.As(err, &tb) || tb.Size != tc.size || tb.Limit != tc.max || local != "" {
					t.Fatalf("download over the limit: %q %v, want a TooBigError of %d over %d", local, err, tc.size, tc.max)
				}
				if ents, _ := os.ReadDir(dir); len(ents) != 0 {
					t.Errorf("left in the local directory: %v", ents)
				}
			})
		}
	})
}

// TestLimitedWriter: the bound of a streamed download lets writes through up to the
// limit and refuses the one that would pass it, writing none of it.
func TestLimitedWriter(t *testing.T) {
	tests := []struct {
		name    string
		limit   int64
		writes  []int
		written int64
		refused bool
	}{
		{name: "under", limit: 10, writes: []int{3, 3}, written: 6},
		{name: "exactly", limit: 10, writes: []int{4, 6}, written: 10},
		{name: "one byte over", limit: 10, writes: []int{4, 7}, written: 4, refused: true},
		{name: "first write over", limit: 10, writes: []int{11}, written: 0, refused: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var dst bytes.Buffer
			lw := &limitedWriter{w: &dst, n: tc.limit}
			var err error
			for _, n := range tc.writes {
				if _, err = lw.Write(bytes.Repeat([]byte("x"), n)); err != nil {
					break
				}
			}
			if int64(dst.Len()) != tc.written || errors.Is(err, errPastLimit) != tc.refused {
				t.Errorf("wrote %d (want %d), err %v (refused: %v)", dst.Len(), tc.written, err, tc.refused)
			}
		})
	}
}

// failingAtEnd gives its content, then fails instead of saying EOF: a compressed
// blob whose checksum differs, or that goes on past its indexed size, tells it there.
type failingAtEnd struct{ r io.Reader }

func (f failingAtEnd) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		err = errors.New("checksum mismatch")
	}
	return n, err
}

// TestUploadSourceFailingAtItsEnd: a source that gives its declared size and then
// fails is not published under the final name; the upload reports the source's error.
func TestUploadSourceFailingAtItsEnd(t *testing.T) {
	b := startInProcess(t)
	out := b.mkdir(t, "out")
	data := randomBytes(t, 100<<10)
	c := NewClient(b.ep, testLogger(t))
	defer c.Close()
	_, err := c.Upload(context.Background(), failingAtEnd{bytes.NewReader(data)}, int64(len(data)), "out", "flow.csv")
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("upload: %v, want the source's error", err)
	}
	if _, err := os.Stat(filepath.Join(out, "flow.csv")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("published under the final name: %v", err)
	}
}
