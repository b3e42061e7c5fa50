package daemon

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmord/cmord/archive"
)

// TestPublishCompressedBlob: the blob store keeps a built file compressed, and what
// reaches the SII over SFTP and the billing folder on disk is the file's own bytes,
// not its compressed form; likewise for a small file the store keeps as it is.
func TestPublishCompressedBlob(t *testing.T) {
	var big strings.Builder
	big.WriteString("COD_SERVIZIO;COD_FLUSSO;PIVA_UTENTE;CP_UTENTE;POD\r\n")
	for i := 0; big.Len() < 300<<10; i++ { // past the store's sample: compressed as a stream
		fmt.Fprintf(&big, "CMOR;0050;%s;E25%07d;IT001E%08d\r\n", ourPIVA, i, i*7919%100000000)
	}
	tests := []struct {
		name       string
		target     string // "sftp" or "dir"
		content    string
		compressed bool
	}{
		{"a REQ file over SFTP", "sftp", big.String(), true},
		{"an export into the billing folder", "dir", big.String(), true},
		{"a short file over SFTP", "sftp", "A;B\r\n1;2\r\n", false},
		{"a short file into the billing folder", "dir", "A;B\r\n1;2\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, time.Now(), worldSpec{roles: `["uscente"]`, billing: true})
			ctx := context.Background()
			name := "SI1_0050_" + strings.ReplaceAll(tt.target, " ", "") + ".csv"
			var f archive.File
			err := w.d.Store.Write(ctx, func(tx *sql.Tx) error {
				var err error
				if f, err = w.d.ArchiveBuilt(ctx, tx, Built{Name: name, Kind: "REQ", Content: []byte(tt.content)}, "build:test"); err != nil {
					return err
				}
				if tt.target == "sftp" {
					return w.d.QueueToSII(ctx, tx, f)
				}
				return w.d.QueueToBilling(ctx, tx, f)
			})
			if err != nil {
				t.Fatal(err)
			}
			stored, compressed, err := w.d.Store.Blobs.StoredFile(f.Hash)
			if err != nil || compressed != tt.compressed {
				t.Fatalf("stored as %s (compressed %v), want compressed %v: %v", stored, compressed, tt.compressed, err)
			}
			if _, err := w.d.DeliverDue(ctx); err != nil {
				t.Fatal(err)
			}
			dest := filepath.Join(w.dir, "billing", name)
			if tt.target == "sftp" {
				dest = filepath.Join(w.dir, "sii", "in", name)
			}
			got, err := os.ReadFile(dest)
			if err != nil {
				t.Fatalf("not delivered: %v", err)
			}
			if !bytes.Equal(got, []byte(tt.content)) {
				t.Fatalf("delivered %d bytes (%.12q…), want the file's %d", len(got), got, len(tt.content))
			}
			if n, _ := w.d.Store.PendingDeliveries(ctx); n != 0 {
				t.Errorf("%d deliveries pending", n)
			}
		})
	}
}
