package intake

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// moveDone moves a file taken to done/ under its name (or name.1, name.2, … if taken)
// with its receipts beside it. Each receipt is written (atomically) before the file
// moves: after a kill -9 in between, the file is still in .inprogress and its re-run
// writes the same receipts under the same free name, overwriting the orphans. A name
// is free when the file itself is not in done/; a receipt without its file is such an
// orphan.
func moveDone(src, dir, name string, receipts map[string][]byte) (string, error) {
	if len(receipts) == 0 {
		return moveNoClobber(src, dir, name, nil)
	}
	suffixes := slices.Sorted(maps.Keys(receipts))
	return moveNoClobber(src, dir, name, func(final string) (bool, error) {
		if _, err := os.Lstat(filepath.Join(dir, final)); err == nil {
			return true, nil
		}
		for _, s := range suffixes {
			if err := writeFileAtomic(filepath.Join(dir, final+s), receipts[s]); err != nil {
				return false, fmt.Errorf("writing the receipt %s: %w", final+s, err)
			}
		}
		if os.Getenv("CMORD_FAILPOINT") == "after_receipt" { // the kill-and-restart test's crash point
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
		return false, nil
	})
}
