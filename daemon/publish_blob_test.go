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
	"github.com/klauspost/compress/zstd"
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

// TestPublishRefusesBlobOfAnotherSize: a compressed blob replaced by a small stream
// that expands far past the file's indexed size (a decompression bomb) is not
// published: nothing reaches the billing folder or the SII under the file's name,
// and the delivery stays pending with an error naming the blob.
func TestPublishRefusesBlobOfAnotherSize(t *testing.T) {
	var content strings.Builder
	content.WriteString("COD_SERVIZIO;COD_FLUSSO;PIVA_UTENTE;CP_UTENTE;POD\r\n")
	for i := 0; content.Len() < 64<<10; i++ {
		fmt.Fprintf(&content, "CMOR;0050;%s;E25%07d;IT001E%08d\r\n", ourPIVA, i, i*7919%100000000)
	}
	var bomb bytes.Buffer
	enc, err := zstd.NewWriter(&bomb, zstd.WithWindowSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	for range 128 { // 128 MiB of zeros in a few KiB
		enc.Write(zeros)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"sftp", "dir"} {
		t.Run(target, func(t *testing.T) {
			w := newWorld(t, time.Now(), worldSpec{roles: `["uscente"]`, billing: true})
			ctx := context.Background()
			name := "SI1_0050_bomb_" + target + ".csv"
			var f archive.File
			err := w.d.Store.Write(ctx, func(tx *sql.Tx) error {
				var err error
				if f, err = w.d.ArchiveBuilt(ctx, tx, Built{Name: name, Kind: "REQ", Content: []byte(content.String())}, "build:test"); err != nil {
					return err
				}
				if target == "sftp" {
					return w.d.QueueToSII(ctx, tx, f)
				}
				return w.d.QueueToBilling(ctx, tx, f)
			})
			if err != nil {
				t.Fatal(err)
			}
			stored, compressed, err := w.d.Store.Blobs.StoredFile(f.Hash)
			if err != nil || !compressed {
				t.Fatalf("stored as %s (compressed %v): %v", stored, compressed, err)
			}
			os.Chmod(stored, 0o644)
			if err := os.WriteFile(stored, bomb.Bytes(), 0o444); err != nil {
				t.Fatal(err)
			}
			w.d.DeliverDue(ctx)
			dest := filepath.Join(w.dir, "billing", name)
			if target == "sftp" {
				dest = filepath.Join(w.dir, "sii", "in", name)
			}
			if st, err := os.Stat(dest); err == nil {
				t.Fatalf("published %s (%d bytes) from a blob that is not the file's content", dest, st.Size())
			}
			if n, _ := w.d.Store.PendingDeliveries(ctx); n != 1 {
				t.Errorf("%d deliveries pending, want the refused one", n)
			}
		})
	}
}
