package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/mail"
)

// [[folder]] unstable_after and [mail] dead_letter_after reach the intake and the
// mail sender, at start and after a reload (SIGHUP), like the other settings.
func TestReloadUnstableAfterAndDeadLetterAfter(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "in"), 0o750); err != nil {
		t.Fatal(err)
	}
	parse := func(unstable string, deadLetter int) *config.Config {
		t.Helper()
		cfg, err := config.Parse(filepath.Join(dir, "cmord.toml"), []byte(fmt.Sprintf(`state_dir = "state"
[company]
piva = "00488410010"
name = "Test"
roles = ["uscente"]
sectors = ["E"]
piva_gestore = "01234567897"
[[folder]]
name = "morosi"
path = "in"
kind = "uscente.morosi"
settle = "50ms"
unstable_after = %q
[mail]
host = "127.0.0.1"
tls = "none"
from = "cmord@example.it"
dead_letter_after = %d
[schedule]
poll_sii = "off"
build = "off"
deliver = "off"
digest = "off"
deadlines = "off"
verify = "off"
`, unstable, deadLetter)))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	tests := []struct {
		unstable       string
		deadLetter     int
		wantUnstable   time.Duration
		wantDeadLetter int
	}{
		{"2m", 3, 2 * time.Minute, 3},
		{"45m", 7, 45 * time.Minute, 7},
	}
	check := func(d *Daemon, wantUnstable time.Duration, wantDeadLetter int) bool {
		cfg := d.Config()
		got := intakeFolder(cfg.Folders[0]).UnstableAfter
		dl := d.Sender().(*mail.Sender).DeadLetterAfter
		return got == wantUnstable && dl == wantDeadLetter
	}
	d, err := New(parse(tests[0].unstable, tests[0].deadLetter), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !check(d, tests[0].wantUnstable, tests[0].wantDeadLetter) {
		t.Fatalf("at start: unstable_after %s, dead_letter_after %d; want %s, %d",
			intakeFolder(d.Config().Folders[0]).UnstableAfter, d.Sender().(*mail.Sender).DeadLetterAfter, tests[0].wantUnstable, tests[0].wantDeadLetter)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for _, tc := range tests[1:] {
		d.Reload(parse(tc.unstable, tc.deadLetter))
		deadline := time.Now().Add(10 * time.Second)
		for !check(d, tc.wantUnstable, tc.wantDeadLetter) {
			if time.Now().After(deadline) {
				t.Fatalf("after reload: unstable_after %s, dead_letter_after %d; want %s, %d",
					intakeFolder(d.Config().Folders[0]).UnstableAfter, d.Sender().(*mail.Sender).DeadLetterAfter, tc.wantUnstable, tc.wantDeadLetter)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// A Config built by hand (no unstable_after, no dead_letter_after) keeps the
	// components' defaults: intake's 1h (the default applied by the intake) and 10.
	hand := *d.Config()
	hand.Folders = []config.Folder{{Name: "x", Path: filepath.Join(dir, "in")}}
	hand.Mail.DeadLetterAfter = 0
	if err := d.apply(&hand); err != nil {
		t.Fatal(err)
	}
	if dl := d.Sender().(*mail.Sender).DeadLetterAfter; dl != 10 {
		t.Errorf("hand-built config: dead_letter_after %d, want the sender's default 10", dl)
	}
}
