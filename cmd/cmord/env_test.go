package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// runAsGroupMember runs the cmord command (this test binary, through TestMain) as a
// user who may read the state directory but not write it, the way a member of the
// cmord group runs the CLI. As root, who ignores file modes, the binary is copied
// where nobody can run it and run as nobody; otherwise the modes alone keep us out.
func runAsGroupMember(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	bin := os.Args[0]
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		bin = filepath.Join(os.TempDir(), fmt.Sprintf("cmord-ro-cli-test-%d", os.Getpid()))
		if _, err := os.Stat(bin); err != nil {
			data, err := os.ReadFile(os.Args[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(bin, data, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Remove(bin) })
		}
		cred = &syscall.Credential{Uid: 65534, Gid: 65534}
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "CMORD_TEST_MAIN=1", "SUDO_USER=", "USER=member")
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if errors.Is(err, fs.ErrPermission) {
		t.Skipf("cannot run the test binary as another user from %s (noexec?): %v", os.TempDir(), err)
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errOut.String()
}

// chmodReadOnly leaves the tree readable by everyone and writable by no one (the
// state directory as the cmord group sees it), and its parents traversable.
func chmodReadOnly(t *testing.T, root string) {
	t.Helper()
	for p := filepath.Dir(root); p != "/" && p != filepath.Clean(os.TempDir()); p = filepath.Dir(p) {
		_ = os.Chmod(p, 0o755)
	}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return os.Chmod(p, 0o555)
		}
		return os.Chmod(p, 0o444)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.IsDir() {
				os.Chmod(p, 0o755)
			}
			return nil
		})
	})
}

// TestReadCommandsOnReadOnlyState: a member of the cmord group (read access to the
// state directory, no write access) can list practices, files and exceptions; a
// command that writes says plainly that it needs write access and how to get it.
func TestReadCommandsOnReadOnlyState(t *testing.T) {
	cfgPath, stateDir := cliFixture(t)
	if err := os.Chmod(cfgPath, 0o644); err != nil {
		t.Fatal(err)
	}
	chmodReadOnly(t, stateDir)
	tests := []struct {
		args     []string
		code     int
		stdout   string
		stderr   []string
		noStderr bool
	}{
		{args: []string{"practices"}, code: exitOK, stdout: "E250000001", noStderr: true},
		{args: []string{"archive", "ls"}, code: exitOK, stdout: "morosi_20250301.csv", noStderr: true},
		{args: []string{"archive", "cat", "1"}, code: exitOK, stdout: "IT001E00000001", noStderr: true},
		{args: []string{"archive", "history", "morosi_20250301.csv"}, code: exitOK, stdout: "folder:morosi", noStderr: true},
		{args: []string{"exceptions"}, code: exitOK, stdout: "row_refused", noStderr: true},
		{args: []string{"digest", "--preview"}, code: exitOK, stdout: "cmord", noStderr: true},
		{args: []string{"exceptions", "resolve", "2", "--note", "x"}, code: exitFindings,
			stderr: []string{"needs write access to the state directory " + stateDir, "sudo -u cmord cmord exceptions resolve"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runAsGroupMember(t, append(tt.args, "--config", cfgPath)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			if !strings.Contains(out, tt.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.stdout, out)
			}
			for _, w := range tt.stderr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if tt.noStderr && errOut != "" {
				t.Errorf("stderr: %s", errOut)
			}
		})
	}
}
