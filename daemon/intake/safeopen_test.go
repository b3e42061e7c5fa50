//go:build linux

package intake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestOpenClaimed: what a claimed name may be at claim time, and what is opened.
func TestOpenClaimed(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, root, outside string) (rel string, scanned os.FileInfo)
		want  string // "" = opened, with content "dropped"
	}{
		{"regular file", func(t *testing.T, root, _ string) (string, os.FileInfo) {
			write(t, root, "a.csv", "dropped")
			return "a.csv", lstat(t, root, "a.csv")
		}, ""},
		{"regular file, recovered (nothing scanned)", func(t *testing.T, root, _ string) (string, os.FileInfo) {
			write(t, root, "a.csv", "dropped")
			return "a.csv", nil
		}, ""},
		{"symlink to a file outside", func(t *testing.T, root, outside string) (string, os.FileInfo) {
			must(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "a.csv")))
			return "a.csv", nil
		}, "symbolic link"},
		{"symlink swapped in after the scan", func(t *testing.T, root, outside string) (string, os.FileInfo) {
			write(t, root, "a.csv", "dropped")
			fi := lstat(t, root, "a.csv")
			must(t, os.Remove(filepath.Join(root, "a.csv")))
			must(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "a.csv")))
			return "a.csv", fi
		}, "symbolic link"},
		{"directory symlink in the path", func(t *testing.T, root, outside string) (string, os.FileInfo) {
			must(t, os.Symlink(outside, filepath.Join(root, "sub")))
			return "sub/secret", nil
		}, "symbolic link"},
		{"another regular file swapped in", func(t *testing.T, root, _ string) (string, os.FileInfo) {
			write(t, root, "a.csv", "dropped")
			fi := lstat(t, root, "a.csv")
			write(t, root, "b.tmp", "dropped")
			must(t, os.Rename(filepath.Join(root, "b.tmp"), filepath.Join(root, "a.csv")))
			return "a.csv", fi
		}, "replaced by another file"},
		{"hard link to a file outside, swapped in", func(t *testing.T, root, outside string) (string, os.FileInfo) {
			write(t, root, "a.csv", "dropped")
			fi := lstat(t, root, "a.csv")
			must(t, os.Remove(filepath.Join(root, "a.csv")))
			must(t, os.Link(filepath.Join(outside, "secret"), filepath.Join(root, "a.csv")))
			return "a.csv", fi
		}, "replaced by another file"},
		{"hard link to a file outside, there at scan time", func(t *testing.T, root, outside string) (string, os.FileInfo) {
			must(t, os.Link(filepath.Join(outside, "secret"), filepath.Join(root, "a.csv")))
			return "a.csv", lstat(t, root, "a.csv")
		}, "2 hard links"},
		{"named pipe", func(t *testing.T, root, _ string) (string, os.FileInfo) {
			must(t, syscall.Mkfifo(filepath.Join(root, "a.csv"), 0o600))
			return "a.csv", nil
		}, "named pipe"},
		{"directory", func(t *testing.T, root, _ string) (string, os.FileInfo) {
			must(t, os.Mkdir(filepath.Join(root, "a.csv"), 0o700))
			return "a.csv", nil
		}, "directory"},
		{"escape with ..", func(t *testing.T, root, outside string) (string, os.FileInfo) {
			return filepath.Join("..", filepath.Base(outside), "secret"), nil
		}, "symbolic link"},
	}
	for _, fallback := range []bool{false, true} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s/openat2=%v", tc.name, !fallback), func(t *testing.T) {
				if fallback {
					withoutOpenat2(t)
				}
				base := t.TempDir()
				root, outside := filepath.Join(base, "drop"), filepath.Join(base, "outside")
				must(t, os.Mkdir(root, 0o700))
				must(t, os.Mkdir(outside, 0o700))
				write(t, outside, "secret", "SECRET KEY")
				rel, scanned := tc.setup(t, root, outside)
				fh, fi, err := openClaimed(root, rel, scanned)
				if tc.want == "" {
					if err != nil {
						t.Fatalf("openClaimed: %v", err)
					}
					defer fh.Close()
					b, _ := io.ReadAll(fh)
					if string(b) != "dropped" || fi.Size() != 7 {
						t.Errorf("read %q (size %d), want the dropped file", b, fi.Size())
					}
					return
				}
				if fh != nil {
					b, _ := io.ReadAll(fh)
					fh.Close()
					t.Fatalf("opened (content %q), want refused: %s", b, tc.want)
				}
				var unsafe *UnsafeFileError
				if !errors.As(err, &unsafe) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("err = %v, want an UnsafeFileError saying %q", err, tc.want)
				}
			})
		}
	}
}

func withoutOpenat2(t *testing.T) {
	old := openat2
	openat2 = func(int, string, *unix.OpenHow) (int, error) { return -1, syscall.ENOSYS }
	t.Cleanup(func() { openat2 = old })
}

// TestClaimSymlinkRace: an attacker with write access to the drop folder swaps the
// dropped file with a symlink to a secret outside the folder, in a loop, while the
// folder claims and processes. Over thousands of claims (a count, not a duration)
// nothing outside the folder is ever read: every content handed to ProcessFunc is a
// dropped file's, and every swap that won the race was refused unread.
func TestClaimSymlinkRace(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 300
	}
	base := t.TempDir()
	root, outside := filepath.Join(base, "drop"), filepath.Join(base, "outside")
	must(t, os.Mkdir(root, 0o700))
	must(t, os.Mkdir(outside, 0o700))
	secret := "-----BEGIN OPENSSH PRIVATE KEY----- not for the archive"
	write(t, outside, "sii_ed25519", secret)
	var mu sync.Mutex
	var read []string
	w, err := New([]Folder{{Name: "billing", Path: root}}, func(_ context.Context, c Claimed) (Outcome, error) {
		b, err := io.ReadAll(io.NewSectionReader(c.File, 0, 1<<62))
		mu.Lock()
		read = append(read, string(b))
		mu.Unlock()
		return Outcome{}, err
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := w.folders[0]
	var unsafe atomic.Int64
	w.events = func(e Event) {
		if e.Kind == EventUnsafe {
			unsafe.Add(1)
		}
	}
	link := filepath.Join(base, "link")
	ctx := context.Background()
	forced := 0
	for i := range n {
		name := fmt.Sprintf("f%05d.csv", i)
		write(t, root, name, "dropped "+name)
		fi := lstat(t, root, name)
		c := &candidate{info: fi, size: fi.Size(), mtime: fi.ModTime()}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		if i%3 == 0 {
			// Every third claim the swap surely happens after the scan.
			swap(t, link, filepath.Join(outside, "sii_ed25519"), filepath.Join(root, name))
			forced++
		} else {
			// The others race: the attacker swaps while the claim runs.
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; ; j++ {
					select {
					case <-stop:
						return
					default:
					}
					l := fmt.Sprintf("%s.%d", link, j)
					if os.Symlink(filepath.Join(outside, "sii_ed25519"), l) == nil {
						if os.Rename(l, filepath.Join(root, name)) != nil {
							os.Remove(l)
						}
					}
				}
			}()
		}
		f.claimAndHandle(ctx, name, c)
		close(stop)
		wg.Wait()
		// A symlink the attacker renamed in after the claim is a new candidate, for
		// a scan that this test does not run: clear it.
		os.Remove(filepath.Join(root, name))
	}
	for _, s := range read {
		if strings.Contains(s, "PRIVATE KEY") || !strings.HasPrefix(s, "dropped f") {
			t.Fatalf("ProcessFunc read %q: something outside the folder was read", s)
		}
	}
	if got := unsafe.Load(); got < int64(forced) {
		t.Errorf("%d unsafe refusals, want at least the %d forced swaps", got, forced)
	}
	if int(unsafe.Load())+len(read) != n {
		t.Errorf("%d refused + %d processed, want %d claims", unsafe.Load(), len(read), n)
	}
	// What was refused lies in rejected/ as the link itself, with its reason.
	ents, _ := os.ReadDir(filepath.Join(root, RejectedDir))
	links := 0
	for _, e := range ents {
		if e.Type()&os.ModeSymlink != 0 {
			links++
			r, err := os.ReadFile(filepath.Join(root, RejectedDir, e.Name()+ReasonSuffix))
			if err != nil || bytes.Contains(r, []byte("PRIVATE KEY")) || !bytes.Contains(r, []byte("symbolic link")) {
				t.Fatalf("reason of %s: %q, %v", e.Name(), r, err)
			}
		}
	}
	if links != int(unsafe.Load()) {
		t.Errorf("%d links in rejected/, want %d", links, unsafe.Load())
	}
	t.Logf("%d claims: %d processed, %d refused unread (%d forced)", n, len(read), unsafe.Load(), forced)
}

func swap(t *testing.T, tmp, target, at string) {
	t.Helper()
	must(t, os.Symlink(target, tmp))
	must(t, os.Rename(tmp, at))
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	must(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600))
}

func lstat(t *testing.T, dir, name string) os.FileInfo {
	t.Helper()
	fi, err := os.Lstat(filepath.Join(dir, name))
	must(t, err)
	return fi
}

// TestReasonTextEscapes: a reason file never carries a raw control character, from
// the file's name or from the reason's body (which quotes outside values).
func TestReasonTextEscapes(t *testing.T) {
	at := time.Date(2025, 10, 15, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name, final, reason string
		want                []string
	}{
		{"terminal escape in the name", "a\x1b[2J.csv", "refused", []string{`file: a\x1b[2J.csv`}},
		{"renamed on finish", "b\a.csv.1", "refused", []string{`file: b\x07.csv.1 (dropped as b\x07.csv)`}},
		{"bidi override and bad byte", "x\u202eexe.\xff", "refused", []string{`x\u202eexe.\xff`}},
		{"body quoting a value", "c.csv", "line 2: value \"\x1b]0;t\x07\"\nline 3: ok", []string{`value "\x1b]0;t\x07"`, "\nline 3: ok"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := strings.TrimSuffix(tc.final, ".1")
			got := string(reasonTextIn(Claimed{Folder: "billing", Name: name, Size: 1}, tc.final, tc.reason, "en", at))
			for i, r := range got {
				if (r < 0x20 && r != '\n') || r == 0x7f || r == 0x202e || (r == 0xfffd && !strings.HasPrefix(got[i:], "\ufffd")) {
					t.Fatalf("raw %U in %q", r, got)
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q does not contain %q", got, w)
				}
			}
		})
	}
}

// TestSubdirReplacedBySymlink: someone with write access to the drop folder replaces
// one of cmord's subdirectories by a symlink to a directory cmord may write (here a
// stand-in for its state directory). No file is moved through it: the claim or the
// move is refused with an event naming the link, and the file waits where it is.
func TestSubdirReplacedBySymlink(t *testing.T) {
	tests := []struct {
		sub       string
		event     string
		staysIn   string // where the dropped file is left
		rejecting bool   // ProcessFunc refuses the file
	}{
		{InProgressDir, EventClaimFailed, "", false},
		{DoneDir, EventFinishFailed, InProgressDir, false},
		{RejectedDir, EventFinishFailed, InProgressDir, true},
	}
	for _, tc := range tests {
		t.Run(tc.sub, func(t *testing.T) {
			elsewhere := t.TempDir()
			r := startRig(t, Folder{Watch: WatchPoll, PollInterval: 20 * time.Millisecond}, func(context.Context, Claimed) (Outcome, error) {
				return Outcome{Rejected: tc.rejecting, Reason: "no"}, nil
			})
			must(t, os.Remove(r.path(tc.sub)))
			must(t, os.Symlink(elsewhere, r.path(tc.sub)))
			r.write("a.csv", "dropped\n")
			r.waitFor(tc.event, func() bool { return r.hasEvent(tc.event) })
			if ents, _ := os.ReadDir(elsewhere); len(ents) > 0 {
				t.Fatalf("moved through the link: %v", ents)
			}
			if _, err := os.Lstat(r.path(tc.staysIn, "a.csv")); err != nil {
				t.Errorf("a.csv is not in %q: %v", tc.staysIn, err)
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			for _, e := range r.events {
				if e.Kind == tc.event && !strings.Contains(e.Detail, "symbolic link") {
					t.Errorf("event %s does not say why: %s", e.Kind, e.Detail)
				}
			}
		})
	}
}
