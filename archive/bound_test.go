package archive

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cmord/cmord/flows"
)

// TestRaiseExceptionBounds: whatever an exception is raised with, what is stored is
// bounded, escaped, and says how big the original was.
func TestRaiseExceptionBounds(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	huge := strings.Repeat("v", 5<<20)
	tests := []struct {
		name  string
		e     Exception
		check func(t *testing.T, got Exception)
	}{
		{"huge value", Exception{Kind: "row_refused", Subject: "a.csv", Value: huge, Message: "refused"}, func(t *testing.T, got Exception) {
			if len(got.Value) > flows.MaxValueLen+32 || !strings.HasSuffix(got.Value, "…(5,242,880 bytes)") {
				t.Errorf("value of %d bytes: %.40q…%q", len(got.Value), got.Value, got.Value[max(len(got.Value)-24, 0):])
			}
		}},
		{"huge message", Exception{Kind: "sii_refusal", Subject: "b", Message: "SII text: " + huge}, func(t *testing.T, got Exception) {
			if len(got.Message) > flows.MaxMessageLen+32 || !strings.HasSuffix(got.Message, "bytes)") {
				t.Errorf("message of %d bytes", len(got.Message))
			}
		}},
		{"huge subject, fingerprint from it", Exception{Kind: "file_rejected", Subject: huge, Message: "m"}, func(t *testing.T, got Exception) {
			if len(got.Subject) > flows.MaxNameLen+32 || len(got.Fingerprint) > maxFingerprint {
				t.Errorf("subject %d bytes, fingerprint %d bytes", len(got.Subject), len(got.Fingerprint))
			}
		}},
		{"control characters", Exception{Kind: "row_refused", Subject: "x\x1b[2J.csv", Value: "\x00\u202e", Message: "line 1\nline 2 \x1b]0;t\x07"}, func(t *testing.T, got Exception) {
			if got.Subject != `x\x1b[2J.csv` || got.Value != `\x00\u202e` || got.Message != "line 1\nline 2 \\x1b]0;t\\x07" {
				t.Errorf("stored %q %q %q", got.Subject, got.Value, got.Message)
			}
		}},
		{"not UTF-8", Exception{Kind: "row_refused", Subject: "caf\xe9.csv", Message: "m"}, func(t *testing.T, got Exception) {
			if got.Subject != `caf\xe9.csv` || !utf8.ValidString(got.Subject) {
				t.Errorf("stored %q", got.Subject)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var id int64
			err := s.Write(ctx, func(tx *sql.Tx) error {
				var err error
				id, _, err = s.RaiseException(ctx, tx, tc.e)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			es, err := s.Exceptions(ctx, ExceptionFilter{})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				if e.ID == id {
					tc.check(t, e)
					return
				}
			}
			t.Fatalf("exception %d not found", id)
		})
	}
}

// TestIngestSizeLimit: content over MaxSize is refused while read: its hash and size
// are indexed (blobs.kept = 0), no blob is written, verify does not miss it; the same
// content under a raised limit is stored and kept.
func TestIngestSizeLimit(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	tests := []struct {
		name   string
		fill   string // distinct content per case
		size   int
		max    int64
		tooBig bool
	}{
		{"no limit", "a", 4097, 0, false},
		{"one byte over", "b", 4097, 4096, true},
		{"exactly at the limit", "c", 4096, 4096, false},
		{"far over, hashed to the end", "d", 1 << 20, 1024, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := strings.Repeat(tc.fill, tc.size)
			res, err := s.Ingest(ctx, IngestRequest{Source: "folder:f", Name: tc.name, Direction: "in", Reader: strings.NewReader(c), MaxSize: tc.max})
			if err != nil {
				t.Fatal(err)
			}
			if res.TooBig != tc.tooBig {
				t.Fatalf("TooBig = %v, want %v", res.TooBig, tc.tooBig)
			}
			sum := sha256.Sum256([]byte(c))
			if res.File.Size != int64(len(c)) || res.File.Hash != hex.EncodeToString(sum[:]) {
				t.Errorf("size %d hash %s, want the whole content's %d %x", res.File.Size, res.File.Hash, len(c), sum)
			}
			_, statErr := s.Blobs.Open(res.File.Hash)
			if tc.tooBig == (statErr == nil) {
				t.Errorf("blob present: %v, want %v", statErr == nil, !tc.tooBig)
			}
			if tc.tooBig && (res.File.State != StateRejected || res.File.Reason != TooBigReason(int64(tc.size), tc.max)) {
				t.Errorf("state %s reason %q", res.File.State, res.File.Reason)
			}
		})
	}
	rep, err := s.Verify(ctx, nil)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify: %v %v", rep.Problems, err)
	}
	// The limit raised, the same bytes again: stored now, and kept from then on.
	res, err := s.Ingest(ctx, IngestRequest{Source: "folder:f", Name: "again", Direction: "in", Reader: strings.NewReader(strings.Repeat("b", 4097))})
	if err != nil || res.TooBig {
		t.Fatalf("%+v %v", res, err)
	}
	var kept bool
	if err := s.Read().QueryRow(`SELECT kept FROM blobs WHERE hash = ?`, res.File.Hash).Scan(&kept); err != nil || !kept {
		t.Errorf("kept = %v, %v", kept, err)
	}
	if _, err := s.Blobs.Open(res.File.Hash); err != nil {
		t.Error(err)
	}
}
