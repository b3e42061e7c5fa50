package uscente

import (
	"context"
	"fmt"
	"io"

	"github.com/cmord/cmord/daemon/family"
	"github.com/cmord/cmord/daemon/receipt"
	"github.com/cmord/cmord/flows"
)

// rowSource is an input file opened for reading row by row: the catalog's flow for its
// kind, the folder's column mapping and encoding, the header read and checked.
type rowSource struct {
	rd   *flows.CSVReader
	rc   io.Closer
	sink *family.FindingSink
}

// openRows opens in for reading. done is set when the file cannot be read at all
// (no such input kind, a bad mapping, a header that does not fit): the file has been
// finished as refused and done is the handler's result.
func openRows(ctx context.Context, in *family.Input) (src *rowSource, done *family.Result, err error) {
	refuse := func(res family.Result) (*rowSource, *family.Result, error) {
		r, err := family.FinishOnly(ctx, in, res)
		return nil, &r, err
	}
	flow := in.Catalog.Input(in.File.Kind)
	if flow == nil {
		return refuse(family.Result{Rejected: true, Reason: "the flow catalog has no input kind " + in.File.Kind})
	}
	opt, err := family.ReadOptions(in)
	if err != nil {
		return refuse(family.Result{Rejected: true, Reason: "column mapping: " + err.Error()})
	}
	rc, err := family.OpenInput(in)
	if err != nil {
		return nil, nil, err
	}
	rd := flows.NewCSVReader(rc, flow, opt)
	sink := family.NewFindingSink(in.File.Name)
	hdr, err := rd.ReadHeader()
	if err != nil {
		family.ReaderCloser{Reader: rd, File: rc}.Close()
		return nil, nil, err
	}
	sink.Add(hdr...)
	if flows.HasErrors(hdr) {
		family.ReaderCloser{Reader: rd, File: rc}.Close()
		reason := "the header row does not fit " + in.File.Kind + " (see the findings); no row was read"
		if why := flows.NotTextReason(hdr); why != "" { // not a text CSV: say what it is
			reason = why
		}
		return refuse(family.Result{Rejected: true, Reason: reason, Findings: sink.Result()})
	}
	return &rowSource{rd: rd, rc: family.ReaderCloser{Reader: rd, File: rc}, sink: sink}, nil, nil
}

// validateWhole reads the whole file once and writes nothing, for folders with
// on_bad_rows = "reject_file": a big file is committed chunk by chunk, so a file that
// will be refused must be known before the first chunk. refused reports that the file
// was finished as refused (res is the handler's result).
func validateWhole(ctx context.Context, in *family.Input) (res family.Result, refused bool, err error) {
	src, done, err := openRows(ctx, in)
	if done != nil {
		return *done, true, err
	}
	if err != nil {
		return family.Result{}, false, err
	}
	defer src.rc.Close()
	rows := 0
	for {
		if rows%4096 == 0 && ctx.Err() != nil {
			return family.Result{}, false, ctx.Err()
		}
		_, fs, err := src.rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return family.Result{}, false, err
		}
		rows++
		src.sink.Add(fs...)
	}
	if src.sink.Errors == 0 {
		return family.Result{}, false, nil
	}
	res = family.Result{Rejected: true, Findings: src.sink.Result(), Meta: map[string]string{"rows": fmt.Sprint(rows)},
		Reason: fmt.Sprintf("%d refused %s and on_bad_rows = \"reject_file\": the whole file is refused, nothing was done",
			src.sink.Errors, family.Plural(src.sink.Errors, "row", "rows"))}
	res, err = family.FinishOnly(ctx, in, res)
	return res, true, err
}

// IdentifyLines reads an archived extract (the same reader, mapping and encoding as
// the handler) and returns the point and customer of the rows at lines: a case refused
// before it became a practice is known only by its line, and the receipt names it so
// that the operator finds it.
func IdentifyLines(ctx context.Context, in *family.Input, lines map[int]bool) (map[int]receipt.Ident, error) {
	flow := in.Catalog.Input(in.File.Kind)
	if flow == nil {
		return nil, nil
	}
	opt, err := family.ReadOptions(in)
	if err != nil {
		return nil, err
	}
	rc, err := family.OpenInput(in)
	if err != nil {
		return nil, err
	}
	rd := flows.NewCSVReader(rc, flow, opt)
	defer family.ReaderCloser{Reader: rd, File: rc}.Close() // a workbook's reader holds it in memory and in temporary files
	if _, err := rd.ReadHeader(); err != nil {
		return nil, err
	}
	ids := map[int]receipt.Ident{}
	for n := 0; len(ids) < len(lines); n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return ids, ctx.Err()
		}
		rec, _, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return ids, err
		}
		if lines[rec.Line] {
			ids[rec.Line] = receipt.Ident{Point: family.FirstNonEmpty(rec.Get(flows.MorPOD), rec.Get(flows.MorPDR)),
				Customer: family.FirstNonEmpty(rec.Get(flows.MorCF), rec.Get(flows.MorPIVA))}
		}
	}
	return ids, nil
}
