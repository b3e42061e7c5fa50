package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/config"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestRunServesHealthMetricsAndNotifiesSystemd runs the daemon as systemd would: it
// must say READY=1 on $NOTIFY_SOCKET, serve /healthz and /metrics on `listen`, count
// a dropped file, and say STOPPING=1 when stopped.
func TestRunServesHealthMetricsAndNotifiesSystemd(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	os.MkdirAll(filepath.Join(dir, "in"), 0o750)
	port := freePort(t)
	cfg, err := config.Parse(filepath.Join(dir, "cmord.toml"), []byte(fmt.Sprintf(`state_dir = %q
listen = "127.0.0.1:%d"
[company]
piva = "00488410010"
name = "Test"
roles = ["uscente"]
sectors = ["E"]
piva_gestore = "01234567897"
[[folder]]
name = "morosi"
path = %q
kind = "uscente.morosi"
settle = "50ms"
`, filepath.Join(dir, "state"), port, filepath.Join(dir, "in"))))
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	msgs := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	waitMsg := func(want string) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case m := <-msgs:
				if strings.Contains(m, want) {
					return
				}
			case <-deadline:
				t.Fatalf("systemd never got %q", want)
			}
		}
	}
	waitMsg("READY=1")

	get := func(path string) (int, string) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	os.WriteFile(filepath.Join(dir, "in", "x.csv"), []byte("SETTORE\r\nE\r\n"), 0o640)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, body := get("/metrics")
		if strings.Contains(body, `cmord_files_in_total{source="folder:morosi"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never counted the dropped file:\n%s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitMsg("STOPPING=1")
}
