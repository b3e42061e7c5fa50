package intake

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/cmord/cmord/flows"
)

// maxSuffix bounds the search for a free name in done/ or rejected/.
const maxSuffix = 100000

// moveNoClobber renames src into dir as name, or name.1, name.2, … if taken, never
// overwriting anything. prepare, if not nil, is called with each candidate name before
// the rename: it may pass over the name (skip), or write what must stand beside the
// file before the file is there (its receipts). It fsyncs dir and src's directory and
// returns the final name.
func moveNoClobber(src, dir, name string, prepare func(final string) (skip bool, err error)) (string, error) {
	for i := 0; i < maxSuffix; i++ {
		final := name
		if i > 0 {
			final = name + "." + strconv.Itoa(i)
		}
		if prepare != nil {
			skip, err := prepare(final)
			if err != nil {
				return "", err
			}
			if skip {
				continue
			}
		}
		err := renameNoReplace(src, filepath.Join(dir, final))
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		return final, syncDirs(dir, filepath.Dir(src))
	}
	return "", fmt.Errorf("no free name for %s in %s", name, dir)
}

// moveRejected moves a refused file to rejected/ and writes its reason file next to
// it. The file moves first: after a crash in between, the file is where an operator
// looks, only its explanation is missing (the archive has it too).
func moveRejected(src, dir string, c Claimed, reason, lang string, now time.Time) (string, error) {
	// A name whose reason file exists is taken, even without its file.
	final, err := moveNoClobber(src, dir, c.Name, func(final string) (bool, error) {
		_, err := os.Lstat(filepath.Join(dir, final+ReasonSuffix))
		return err == nil, nil
	})
	if err != nil {
		return "", err
	}
	if err := writeFileAtomic(filepath.Join(dir, final+ReasonSuffix), reasonTextIn(c, final, reason, lang, now)); err != nil {
		return final, fmt.Errorf("writing the reason for %s: %w", final, err)
	}
	return final, nil
}

// reasonHeaders are the words of the reason file's header: Italian unless lang is "en".
var reasonHeaders = map[string][6]string{
	"en": {"rejected (no reason given)", " (dropped as ", "%d bytes", "1 byte", "rejected: %s (Europe/Rome)\nfolder: %s\nfile: %s\nsize: %s\n\n%s", "2006-01-02 15:04:05 MST"},
	"it": {"rifiutato (nessun motivo indicato)", " (lasciato come ", "%d byte", "1 byte", "rifiutato il: %s (ora di Roma)\ncartella: %s\nfile: %s\ndimensione: %s\n\n%s", "02/01/2006 15:04:05 MST"},
}

// reasonTextIn is the content of NAME.reason.txt in lang.
func reasonTextIn(c Claimed, final, reason, lang string, now time.Time) []byte {
	if lang != "en" {
		lang = "it"
	}
	h := reasonHeaders[lang]
	if reason == "" {
		reason = h[0]
	}
	// The body quotes outside values (names, fields): no control character may reach
	// the operator's terminal or editor through it.
	reason = flows.EscapeText(reason)
	if reason[len(reason)-1] != '\n' {
		reason += "\n"
	}
	// The one header of the file: the daemon's reason text is only the body.
	file := flows.Escape(final)
	if c.Name != "" && c.Name != final {
		file += h[1] + flows.Escape(c.Name) + ")"
	}
	size := fmt.Sprintf(h[2], c.Size)
	if c.Size == 1 {
		size = h[3]
	}
	return fmt.Appendf(nil, h[4], now.In(flows.Rome).Format(h[5]), c.Folder, file, size, reason)
}

// writeFileAtomic writes path through a hidden temp file in the same directory:
// write, fsync, rename, fsync the directory.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o640); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDirs(dir)
}

// syncDirs fsyncs directories so that renames in them survive a power loss.
func syncDirs(dirs ...string) error {
	var errs []error
	for _, dir := range dirs {
		d, err := os.Open(dir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// Some network filesystems refuse fsync on a directory; nothing more to do there.
		if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
			errs = append(errs, fmt.Errorf("fsync %s: %w", dir, err))
		}
		d.Close()
	}
	return errors.Join(errs...)
}
