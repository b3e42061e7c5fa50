package family

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmord/cmord/archive"
	"github.com/klauspost/compress/zstd"
)

// TestInputOpenEnforcesIndexedSize: a handler reads its input through the archived
// file's size: a compressed blob replaced by a valid stream of a shortened content is
// not read as a whole (shorter) file, and one that goes on past the size gives no
// more than it; the content as archived reads whole.
func TestInputOpenEnforcesIndexedSize(t *testing.T) {
	var extract strings.Builder
	extract.WriteString("SETTORE;COD_POD;CF_CLIENTE\r\n")
	for i := 0; extract.Len() < 64<<10; i++ {
		fmt.Fprintf(&extract, "E;IT001E%08d;RSSMRA85T10A562S\r\n", i)
	}
	content := []byte(extract.String())
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	tests := []struct {
		name   string
		stored []byte // nil: as archived
		want   string
	}{
		{"as archived", nil, ""},
		{"shortened", enc.EncodeAll(content[:len(content)/2], nil), "ends after"},
		{"lengthened", enc.EncodeAll(append(append([]byte{}, content...), content...), nil), "holds more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := archive.Open(filepath.Join(t.TempDir(), "state"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			res, err := st.Ingest(context.Background(), archive.IngestRequest{Source: "folder:morosi", Name: "morosi.csv", Direction: "in",
				Kind: "test", Reader: bytes.NewReader(content)})
			if err != nil {
				t.Fatal(err)
			}
			path, compressed, err := st.Blobs.StoredFile(res.File.Hash)
			if err != nil || !compressed {
				t.Fatalf("stored as %s (compressed %v): %v", path, compressed, err)
			}
			if tt.stored != nil {
				os.Chmod(path, 0o644)
				if err := os.WriteFile(path, tt.stored, 0o444); err != nil {
					t.Fatal(err)
				}
			}
			rc, err := (&Input{File: res.File, Store: st}).Open()
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if tt.want == "" {
				if err != nil || !bytes.Equal(got, content) {
					t.Fatalf("read %d bytes, %v; want the content", len(got), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("read %d bytes, %v; want an error saying %q", len(got), err, tt.want)
			}
			if len(got) > len(content) {
				t.Errorf("read %d bytes, more than the archived %d", len(got), len(content))
			}
		})
	}
}
