package family

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"golang.org/x/text/encoding/charmap"

	"github.com/cmord/cmord/config"
	"github.com/cmord/cmord/daemon/xlsxrows"
	"github.com/cmord/cmord/flows"
)

// What every family's handlers share to read their files.

// MaxKeptFindings bounds the findings a handler keeps in memory for one file: a
// million bad rows must not take a million findings' worth of memory. The count of the
// rest goes in the file's meta and one summary finding.
const MaxKeptFindings = 2000

// FindingSink keeps the findings of one file, bounded.
type FindingSink struct {
	File    string
	Kept    []flows.Finding
	Errors  int // refusals seen, kept or not
	Dropped int // findings past MaxKeptFindings, counted only
}

// NewFindingSink returns an empty sink for the findings of file.
func NewFindingSink(file string) *FindingSink { return &FindingSink{File: file} }

// Add keeps fs (up to MaxKeptFindings) with the sink's file name.
func (s *FindingSink) Add(fs ...flows.Finding) {
	for _, f := range fs {
		if f.File == "" {
			f.File = s.File
		}
		if !f.IsWarning() {
			s.Errors++
		}
		if len(s.Kept) >= MaxKeptFindings {
			s.Dropped++
			continue
		}
		s.Kept = append(s.Kept, f)
	}
}

// Result returns the kept findings in line order, and one that counts the dropped ones.
func (s *FindingSink) Result() []flows.Finding {
	// In line order: a case's findings are known only when its chunk is written,
	// after the findings of the rows read with that chunk.
	sort.SliceStable(s.Kept, func(a, b int) bool { return s.Kept[a].Line < s.Kept[b].Line })
	if s.Dropped == 0 {
		return s.Kept
	}
	return append(s.Kept, flows.Finding{File: s.File, Rule: "MORE", Message: fmt.Sprintf("%d more findings not listed; run `cmord validate` on the file for all of them", s.Dropped)})
}

// OpenInput opens an input file for a reader, honouring the folder's encoding.
func OpenInput(in *Input) (io.ReadCloser, error) {
	rc, err := in.Open()
	if err != nil {
		return nil, err
	}
	if in.Folder != nil && strings.EqualFold(in.Folder.Encoding, "windows-1252") {
		// A workbook or a binary file is not text: the reader must see its own bytes
		// to say what it is.
		br := bufio.NewReader(rc)
		if head, _ := br.Peek(1024); flows.SniffFormat(head) != flows.FormatText {
			return struct {
				io.Reader
				io.Closer
			}{br, rc}, nil
		}
		return struct {
			io.Reader
			io.Closer
		}{charmap.Windows1252.NewDecoder().Reader(br), rc}, nil
	}
	return rc, nil
}

// ReaderCloser closes a reader (a workbook's temporary files) and then its file.
type ReaderCloser struct {
	Reader *flows.CSVReader
	File   io.Closer
}

// Close closes the reader, then the file.
func (c ReaderCloser) Close() error {
	err := c.Reader.Close()
	if err2 := c.File.Close(); err == nil {
		err = err2
	}
	return err
}

// ReadOptions returns the reader options of a folder input.
func ReadOptions(in *Input) (flows.ReadOptions, error) {
	opt := flows.ReadOptions{FileName: in.File.Name}
	if in.Folder != nil {
		m, err := in.Folder.FolderMapping()
		if err != nil {
			return opt, err
		}
		opt.MappingFile, opt.DecimalComma = m, in.Folder.DecimalComma
		opt.Workbook = xlsxrows.Open // billing saves from Excel: .xlsx drops are read as they are
	}
	return opt, nil
}

// RejectFile reports whether the folder refuses a whole file for one bad row.
func RejectFile(in *Input) bool { return in.Folder != nil && in.Folder.OnBadRows == "reject_file" }

// SniffFormat tells an SII file in XML from one in CSV by the first non-blank byte.
func SniffFormat(in *Input) (string, error) {
	rc, err := in.Open()
	if err != nil {
		return "", err
	}
	defer rc.Close()
	br := bufio.NewReader(rc)
	for {
		c, err := br.ReadByte()
		if err != nil {
			return "csv", nil
		}
		switch c {
		case ' ', '\t', '\r', '\n', 0xEF, 0xBB, 0xBF:
			continue
		case '<':
			return "xml", nil
		}
		return "csv", nil
	}
}

// FirstNonEmpty returns the first of vs that is not empty.
func FirstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// Plural returns one for n == 1, else many.
func Plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// CMORParams turns the [cmor] configuration into the computation's parameters.
func CMORParams(c config.CMOR) flows.CMORParams {
	p := flows.DefaultCMORParams()
	p.CreditWindowMonths, p.SpendWindowMonths, p.EstimateMonths = c.CreditWindowMonths, c.SpendWindowMonths, c.EstimateMonths
	p.EstimateMethod, p.MinIndemnity, p.PreviousInsideCap = c.EstimateMethod, c.MinIndemnity, c.PreviousInsideCap
	p.PartialInvoice, p.ExcludeRAI, p.RequireActualReadings = c.PartialInvoice, c.ExcludeRAI, c.RequireActualReadings
	p.WindowOpenMonths, p.WindowRule = c.WindowOpenMonths, c.WindowRule
	if p.Validate() != nil {
		return flows.DefaultCMORParams()
	}
	return p
}

// ApplyRows reads every record of rd into sink and hands each row without errors to
// apply, whose findings are kept with the row's line. It stops at the first problem
// of the file's layout (a header finding of a CSV file, a reader that refuses the
// file, header findings of a file without rows) and reports it as headerBad: the
// caller refuses the whole file then. rows counts the rows read before that.
func ApplyRows(ctx context.Context, rd flows.FlowReader, format string, sink *FindingSink, apply func(ctx context.Context, rec flows.Record) ([]flows.Finding, error)) (rows int, headerBad bool, err error) {
	for {
		rec, fs, err := rd.Next()
		if err == io.EOF {
			// A file without rows still has its header's findings (not text, no
			// header row): they refuse it, never an empty success.
			sink.Add(fs...)
			return rows, flows.HasErrors(fs), nil
		}
		if err != nil {
			var fd flows.Finding
			if errors.As(err, &fd) {
				sink.Add(fd)
				return rows, true, nil
			}
			return rows, false, err
		}
		sink.Add(fs...)
		for _, fd := range fs {
			if fd.Line <= 1 && !fd.IsWarning() && format == "csv" {
				return rows, true, nil
			}
		}
		rows++
		if flows.HasErrors(fs) {
			continue
		}
		more, err := apply(ctx, rec)
		if err != nil {
			return rows, false, err
		}
		for i := range more {
			if more[i].Line == 0 {
				more[i].Line = rec.Line
			}
		}
		sink.Add(more...)
	}
}
