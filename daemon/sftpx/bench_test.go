package sftpx

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"github.com/cmord/cmord/daemon/sftpx/sshdtest"
)

// The benchmarks run our client and OpenSSH's own sftp(1) against the same real
// sshd, on the same files, in the same run. Each iteration includes connecting (sftp
// starts a new process and session each time, so ours dials a new Client too).
//
//	go test -run '^$' -bench . -benchtime 3x ./daemon/sftpx/

const (
	bigSize    = 64 << 20
	smallCount = 1000
	smallSize  = 4 << 10
	workers    = 16 // goroutines sharing one connection for many small files
)

type benchEnv struct {
	b     backend
	local string // local directory with big.bin and small/
}

func newBenchEnv(b *testing.B) *benchEnv {
	be := startSSHD(b, sshdtest.Options{})
	if _, err := exec.LookPath("sftp"); err != nil {
		b.Skip("OpenSSH sftp client not installed")
	}
	local := b.TempDir()
	if err := os.WriteFile(filepath.Join(local, "big.bin"), randomBytes(b, bigSize), 0o644); err != nil {
		b.Fatal(err)
	}
	os.Mkdir(filepath.Join(local, "small"), 0o755)
	os.Mkdir(filepath.Join(be.root, "small"), 0o755)
	for i := range smallCount {
		data := randomBytes(b, smallSize)
		name := fmt.Sprintf("s%04d.csv", i)
		os.WriteFile(filepath.Join(local, "small", name), data, 0o644)
		os.WriteFile(filepath.Join(be.root, "small", name), data, 0o644)
	}
	os.WriteFile(filepath.Join(be.root, "big.bin"), randomBytes(b, bigSize), 0o644)
	return &benchEnv{b: be, local: local}
}

// openssh runs sftp(1) in batch mode with the given commands.
func (e *benchEnv) openssh(b *testing.B, cmds string, extra ...string) {
	batch := filepath.Join(b.TempDir(), "batch")
	os.WriteFile(batch, []byte(cmds), 0o600)
	s := e.b.sshd
	args := append([]string{"-q", "-b", batch, "-F", "/dev/null", "-i", s.ClientKeyFile,
		"-o", "UserKnownHostsFile=" + s.KnownHostsFile, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
		"-P", strconv.Itoa(s.Port)}, extra...)
	out, err := exec.Command("sftp", append(args, s.User+"@127.0.0.1")...).CombinedOutput()
	if err != nil {
		b.Fatalf("sftp: %v\n%s", err, out)
	}
}

// freshDir makes an empty remote (and returns its relative name) or local directory.
//
// It also flushes the page cache's dirty data (sync(2)), so that the writeback of
// one iteration's or variant's files is not billed to the next.
func freshDir(b *testing.B, parent, prefix string, i int) (string, string) {
	defer syscall.Sync()
	name := fmt.Sprintf("%s%d", prefix, i)
	p := filepath.Join(parent, name)
	os.RemoveAll(p)
	if err := os.Mkdir(p, 0o755); err != nil {
		b.Fatal(err)
	}
	return name, p
}

func (e *benchEnv) endpoint(variant string) Endpoint {
	ep := e.b.ep
	ep.ConcurrentWrites, ep.ConcurrentReads = true, true
	switch variant {
	case "ours_nofsync":
		ep.SkipFsync = true
	case "ours_256k":
		ep.MaxPacket = 255 << 10 // OpenSSH accepts up to 256 KiB packets
	}
	return ep
}

func BenchmarkUploadBig(b *testing.B) {
	e := newBenchEnv(b)
	src := filepath.Join(e.local, "big.bin")
	for _, variant := range []string{"ours", "ours_nofsync", "ours_256k", "openssh", "openssh_aes128gcm"} {
		b.Run(variant, func(b *testing.B) {
			b.SetBytes(bigSize)
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				dir, _ := freshDir(b, e.b.root, "upbig_"+variant, i)
				b.StartTimer()
				switch variant {
				case "openssh":
					e.openssh(b, fmt.Sprintf("put %s %s/big.bin\n", src, dir))
					continue
				case "openssh_aes128gcm": // the cipher our client negotiates (sftp(1) prefers chacha20-poly1305)
					e.openssh(b, fmt.Sprintf("put %s %s/big.bin\n", src, dir), "-c", "aes128-gcm@openssh.com")
					continue
				}
				c := NewClient(e.endpoint(variant), nil)
				if _, err := c.UploadFile(context.Background(), src, dir, "big.bin"); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

func BenchmarkDownloadBig(b *testing.B) {
	e := newBenchEnv(b)
	for _, variant := range []string{"ours", "ours_256k", "openssh", "openssh_aes128gcm"} {
		b.Run(variant, func(b *testing.B) {
			b.SetBytes(bigSize)
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				_, dir := freshDir(b, e.local, "downbig_"+variant, i)
				b.StartTimer()
				switch variant {
				case "openssh":
					e.openssh(b, fmt.Sprintf("get big.bin %s/big.bin\n", dir))
					continue
				case "openssh_aes128gcm":
					e.openssh(b, fmt.Sprintf("get big.bin %s/big.bin\n", dir), "-c", "aes128-gcm@openssh.com")
					continue
				}
				c := NewClient(e.endpoint(variant), nil)
				if _, _, err := c.Download(context.Background(), "big.bin", dir, 0); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

// parallel runs f for every index in [0, n) on workers goroutines.
func parallel(n int, f func(i int) error) error {
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

func BenchmarkUpload1000Small(b *testing.B) {
	e := newBenchEnv(b)
	entries, _ := os.ReadDir(filepath.Join(e.local, "small"))
	for _, variant := range []string{"ours", "ours_nofsync", "openssh"} {
		b.Run(variant, func(b *testing.B) {
			b.SetBytes(smallCount * smallSize)
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				dir, _ := freshDir(b, e.b.root, "upsmall_"+variant, i)
				b.StartTimer()
				if variant == "openssh" {
					e.openssh(b, fmt.Sprintf("put %s/* %s/\n", filepath.Join(e.local, "small"), dir))
					continue
				}
				c := NewClient(e.endpoint(variant), nil)
				err := parallel(len(entries), func(j int) error {
					_, err := c.UploadFile(context.Background(), filepath.Join(e.local, "small", entries[j].Name()), dir, entries[j].Name())
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

func BenchmarkDownload1000Small(b *testing.B) {
	e := newBenchEnv(b)
	for _, variant := range []string{"ours", "openssh"} {
		b.Run(variant, func(b *testing.B) {
			b.SetBytes(smallCount * smallSize)
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				_, dir := freshDir(b, e.local, "downsmall_"+variant, i)
				b.StartTimer()
				if variant == "openssh" {
					e.openssh(b, fmt.Sprintf("get small/* %s/\n", dir))
					continue
				}
				c := NewClient(e.endpoint(variant), nil)
				list, err := c.List(context.Background(), "small")
				if err != nil || len(list) != smallCount {
					b.Fatalf("list: %d %v", len(list), err)
				}
				err = parallel(len(list), func(j int) error {
					_, _, err := c.Download(context.Background(), "small/"+list[j].Name, dir, 0)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}
