package flows

import (
	"bytes"
	"fmt"
)

// A flow file is an envelope (the CSV header row; the XML prolog and root element)
// around a body of records. A builder that sizes its files request by request encodes
// each request's body once with a BodyEncoder and assembles the file with Assemble,
// instead of encoding every request alone to measure it and then the whole file again.

// Envelope returns what a file of flow f in format holds before and after its records.
func Envelope(f *Flow, format string) (prefix, suffix []byte, err error) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, f, format)
	if err != nil {
		return nil, nil, err
	}
	if err := w.Close(); err != nil {
		return nil, nil, err
	}
	all := buf.Bytes()
	if pickFormat(f, format) == "xml" {
		suffix = []byte(fmt.Sprintf("</%s>\n", f.xmlRoot()))
	}
	if !bytes.HasSuffix(all, suffix) {
		return nil, nil, fmt.Errorf("flow %s: unexpected %s envelope", f.Key, format)
	}
	return all[:len(all)-len(suffix)], suffix, nil
}

// BodyEncoder encodes records of one flow in one format without the envelope.
type BodyEncoder struct {
	f              *Flow
	format         string
	prefix, suffix []byte
	buf            bytes.Buffer
	csv            *CSVWriter // reused from request to request (CSV only)
}

// NewBodyEncoder prepares an encoder of f's records in format.
func NewBodyEncoder(f *Flow, format string) (*BodyEncoder, error) {
	prefix, suffix, err := Envelope(f, format)
	if err != nil {
		return nil, err
	}
	return &BodyEncoder{f: f, format: format, prefix: prefix, suffix: suffix}, nil
}

// Envelope returns what the file holds before and after its records.
func (e *BodyEncoder) Envelope() (prefix, suffix []byte) { return e.prefix, e.suffix }

// Encode validates rows (as a Writer does: a refused row is a *RecordError) and
// returns their records without the envelope, in a new slice. The rows of one call
// must be whole records: in a flow with row groups, a group does not continue into the
// next call.
func (e *BodyEncoder) Encode(rows []map[string]string) ([]byte, error) {
	return e.encode(func(w FlowWriter) error {
		for _, r := range rows {
			if err := w.Write(r); err != nil {
				return err
			}
		}
		return nil
	})
}

// EncodeRecords is Encode for records of the flow (positional values: no map per row).
func (e *BodyEncoder) EncodeRecords(recs []Record) ([]byte, error) {
	return e.encode(func(w FlowWriter) error {
		for _, r := range recs {
			if err := w.WriteRecord(r); err != nil {
				return err
			}
		}
		return nil
	})
}

func (e *BodyEncoder) encode(write func(FlowWriter) error) ([]byte, error) {
	e.buf.Reset()
	if pickFormat(e.f, e.format) == "csv" {
		// One writer for every call: a CSV body is its rows, the envelope is the
		// header row alone (Envelope), so the writer starts each body past it.
		if e.csv == nil {
			e.csv = NewCSVWriter(&e.buf, e.f)
		}
		e.csv.w.Reset(&e.buf)
		e.csv.line, e.csv.header, e.csv.err = 1, true, nil
		if err := write(e.csv); err != nil {
			return nil, err
		}
		if err := e.csv.Flush(); err != nil {
			return nil, err
		}
		return bytes.Clone(e.buf.Bytes()), nil
	}
	w, err := NewWriter(&e.buf, e.f, e.format)
	if err != nil {
		return nil, err
	}
	if err := write(w); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	all := e.buf.Bytes()
	if !bytes.HasPrefix(all, e.prefix) || !bytes.HasSuffix(all, e.suffix) {
		return nil, fmt.Errorf("flow %s: unexpected %s envelope", e.f.Key, e.format)
	}
	return bytes.Clone(all[len(e.prefix) : len(all)-len(e.suffix)]), nil
}

// RecordOf returns a record of f holding values (positional, in f's layout order; not
// copied), or false when their number is not f's.
func RecordOf(f *Flow, values []string) (Record, bool) {
	if len(values) != len(f.Fields) {
		return Record{}, false
	}
	return Record{Values: values, layout: f.layout}, true
}

// Assemble writes a whole file from its envelope and bodies.
func Assemble(prefix, suffix []byte, bodies [][]byte) []byte {
	n := len(prefix) + len(suffix)
	for _, b := range bodies {
		n += len(b)
	}
	out := make([]byte, 0, n)
	out = append(out, prefix...)
	for _, b := range bodies {
		out = append(out, b...)
	}
	return append(out, suffix...)
}
