package flows

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// fullUscenteData has every field of UscenteData and of what it holds set to a value
// other than its zero (TestCompactFixtureIsFull checks it), so a round trip proves
// that the compact form carries every one of them.
func fullUscenteData() UscenteData {
	sw := D(2025, 3, 1)
	return UscenteData{
		Case: Case{Sector: "E", POD: "IT001E00000042", PDR: "01234567890123", CustomerCF: "VRDGPP70A01H501X", CustomerPIVA: "01234567890",
			CustomerName: `Giuseppe "Peppe" Verdi, è`, SwitchDate: sw, Voltage: "BT", GasUse: "altri", AnnualSmc: 12_345, AllPointsLost: true,
			Mora:                 []MoraNotice{{Date: D(2024, 11, 2), Channel: "PE", Received: D(2024, 11, 4), Term: D(2024, 11, 24), MentionsCMOR: true, Ref: "M-1"}},
			ClosingInvoiceIssued: true, TIFIndemnitiesPaid: true, ComplaintsAnswered: true, PointActive: true, Voltura: true,
			Invoices: []Invoice{
				{Number: "F2025-0001", Issued: D(2024, 12, 10), Due: D(2025, 1, 9), PeriodFrom: D(2024, 11, 1), PeriodTo: D(2024, 11, 30),
					Amount: 15_000, Unpaid: 14_950, RAI: 900, Reading: "S", Conguagliata: true, Reconstruction: true},
				{Number: "F2025-0002", Amount: -50, Unpaid: -50},
			},
			Spend:        []MonthSpend{{Month: D(2024, 1, 1), Amount: 7_012}, {Month: D(2024, 2, 1), Amount: -3}},
			PreviousCMOR: 4_200, PreviousCPGestore: "G123"},
		Audit: &CMORAudit{RequestDate: D(2025, 10, 15), Credit: 14_900, Estimate: 28_048, Base: 14_900, Previous: 4_200, CMOR: 19_100,
			CreditWindowFrom: D(2024, 9, 1), CreditWindowTo: D(2025, 2, 28), Counted: []string{"F2025-0001"},
			Excluded: []Exclusion{{Invoice: "F2025-0002", Reason: "credit note"}}},
		Inputs:   []InputRef{{FileID: 3, Lines: []int{2, 3, 4}}, {FileID: 1 << 40, Lines: []int{}}},
		Warnings: []Finding{{File: "morosi.csv", Line: 7, Field: "IMPORTO", Rule: "E6", Value: "1,00", Message: "small", Severity: "warning"}},
		Refusals: []Finding{{File: "x.csv", Line: 1, Field: "F", Rule: "E1", Value: "v", Message: "no", Severity: "error"}},
		Refund: &Refund{AnnulledOn: D(2026, 1, 5), DueBy: D(2026, 1, 15), Amount: 19_100, RefundedOn: D(2026, 1, 10), Refunded: 19_100,
			Mode: "bonifico", AckDueBy: D(2026, 1, 14), AckSent: true},
		RefileOf: 77,
	}
}

// Every field (recursively, through pointers, slices' first elements and structs) of
// the fixture is set: a field added to UscenteData later fails here until the fixture,
// and so the round trip below, covers it.
func TestCompactFixtureIsFull(t *testing.T) {
	var walk func(path string, v reflect.Value)
	walk = func(path string, v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if v.IsNil() {
				t.Errorf("%s is nil in the fixture", path)
				return
			}
			walk(path, v.Elem())
		case reflect.Struct:
			if v.Type() == reflect.TypeOf(Date{}) {
				if v.IsZero() {
					t.Errorf("%s is the zero date in the fixture", path)
				}
				return
			}
			for i := 0; i < v.NumField(); i++ {
				walk(path+"."+v.Type().Field(i).Name, v.Field(i))
			}
		case reflect.Slice:
			if path == "UscenteData.Payments" {
				return // no compact form: a case with payments stays JSON (TestCompactPaymentsStayJSON)
			}
			if v.Len() == 0 {
				t.Errorf("%s is empty in the fixture", path)
				return
			}
			walk(path+"[0]", v.Index(0))
		default:
			if v.IsZero() {
				t.Errorf("%s is zero in the fixture", path)
			}
		}
	}
	d := fullUscenteData()
	walk("UscenteData", reflect.ValueOf(&d))
}

// The payments applied to a practice (uscente.incassi) have no compact form: a case
// that has some is stored as JSON, and read back whole.
func TestCompactPaymentsStayJSON(t *testing.T) {
	d := fullUscenteData()
	d.Payments = []AppliedPayment{{Key: PaymentKey("F2025-0001", D(2025, 10, 16), 5_000, ""), FileID: 4, Line: 2}}
	row := CaseRow{Point: CasePoint(&d.Case), CustomerID: CaseCustomer(&d.Case)}
	if _, ok := d.AppendCompact(nil, row); ok {
		t.Fatal("a case with payments was encoded compact")
	}
	b := EncodeUscenteData(&d, row)
	if IsCompactUscenteData(b) {
		t.Fatal("stored compact")
	}
	got, err := DecodeUscenteData(b, row)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, d) {
		t.Errorf("read back %+v, want %+v", got.Payments, d.Payments)
	}
}

func TestCompactRoundTrip(t *testing.T) {
	full := fullUscenteData()
	gas := fullUscenteData()
	gas.Case.Sector, gas.Case.POD, gas.Case.CustomerCF = "G", "", ""
	rowOf := func(d UscenteData) CaseRow {
		return CaseRow{Point: CasePoint(&d.Case), CustomerID: CaseCustomer(&d.Case), CustomerName: d.Case.CustomerName, SwitchDate: d.Case.SwitchDate}
	}
	empties := UscenteData{Case: Case{Mora: []MoraNotice{}, Invoices: []Invoice{}, Spend: []MonthSpend{}},
		Audit: &CMORAudit{Counted: []string{}, Excluded: []Exclusion{}}, Inputs: []InputRef{{Lines: nil}}, Warnings: []Finding{}, Refusals: []Finding{}, Refund: &Refund{}}
	tests := []struct {
		name string
		d    UscenteData
		row  CaseRow
	}{
		{"every field, the row's point, customer, name and switch", full, rowOf(full)},
		{"every field, a row that differs in all four", full, CaseRow{Point: "IT001E99999999", CustomerID: "OTHER", CustomerName: "Other", SwitchDate: D(2020, 1, 1)}},
		{"every field, no row", full, CaseRow{}},
		{"gas: PDR and P.IVA from the row", gas, rowOf(gas)},
		{"zero value", UscenteData{}, CaseRow{}},
		{"zero value, a row", UscenteData{}, rowOf(full)},
		{"empty slices are not nil", empties, CaseRow{}},
		{"negative, large and odd values", UscenteData{Case: Case{AnnualSmc: -1, PreviousCMOR: -1 << 62, SwitchDate: D(9999, 12, 31), CustomerName: "\x00\xff\x1e"},
			Inputs: []InputRef{{FileID: -5, Lines: []int{-1, 1 << 40}}}, RefileOf: -1}, CaseRow{SwitchDate: D(9999, 12, 31)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, ok := tt.d.AppendCompact([]byte("prefix"), tt.row)
			if !ok {
				t.Fatal("not encodable")
			}
			if !bytes.HasPrefix(b, []byte("prefix")) {
				t.Fatalf("AppendCompact did not append: %q", b)
			}
			b = b[len("prefix"):]
			if !IsCompactUscenteData(b) {
				t.Fatalf("not recognised as compact: %q", b)
			}
			got, err := DecodeUscenteData(b, tt.row)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.d) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, tt.d)
			}
			// What callers that read JSON get: the bytes Marshal gives the original.
			js, err := UscenteDataJSON(b, tt.row)
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.d.Marshal(); !bytes.Equal(js, want) {
				t.Errorf("as JSON:\n got %s\nwant %s", js, want)
			}
			if stored := EncodeUscenteData(&tt.d, tt.row); !bytes.Equal(stored, b) {
				t.Errorf("EncodeUscenteData = %q, want the compact form %q", stored, b)
			}
		})
	}
}

// The row's four values are left out when they are the case's: the same case is
// shorter with its row than without, by at least their lengths.
func TestCompactLeavesOutTheRow(t *testing.T) {
	d := fullUscenteData()
	d.Case.PDR, d.Case.CustomerPIVA = "", ""
	row := CaseRow{Point: d.Case.POD, CustomerID: d.Case.CustomerCF, CustomerName: d.Case.CustomerName, SwitchDate: d.Case.SwitchDate}
	with, _ := d.AppendCompact(nil, row)
	without, _ := d.AppendCompact(nil, CaseRow{})
	if saved := len(without) - len(with); saved < len(row.Point)+len(row.CustomerID)+len(row.CustomerName)+2 {
		t.Errorf("with the row %d bytes, without %d: want at least the row's values less", len(with), len(without))
	}
	// Read with another row, the case takes that row's values: the form is only ever
	// read with the row it was written for (the practice's own, in the same record).
	other := CaseRow{Point: "IT001E11111111", CustomerID: "C", CustomerName: "N", SwitchDate: D(2021, 1, 1)}
	got, err := DecodeUscenteData(with, other)
	if err != nil || got.Case.POD != other.Point || got.Case.CustomerCF != "C" || got.Case.CustomerName != "N" || got.Case.SwitchDate != other.SwitchDate {
		t.Errorf("read with another row: %+v, %v", got.Case, err)
	}
}

// JSON stored by earlier versions is read as before, and data the compact form cannot
// hold exactly (a date out of its range) is stored as JSON.
func TestCompactFallsBackToJSON(t *testing.T) {
	d := fullUscenteData()
	js := d.Marshal()
	got, err := DecodeUscenteData(js, CaseRow{})
	if err != nil || !reflect.DeepEqual(got, d) {
		t.Errorf("JSON read: %v, %+v", err, got)
	}
	if out, err := UscenteDataJSON(js, CaseRow{}); err != nil || !bytes.Equal(out, js) {
		t.Errorf("JSON given as JSON: %s, %v", out, err)
	}
	for _, empty := range [][]byte{nil, []byte("{}")} {
		if got, err := DecodeUscenteData(empty, CaseRow{}); err != nil || !reflect.DeepEqual(got, UscenteData{}) {
			t.Errorf("DecodeUscenteData(%q) = %+v, %v", empty, got, err)
		}
	}
	for _, bad := range []Date{{Y: -1, M: 1, D: 1}, {Y: 2025, M: 16, D: 1}, {Y: 2025, M: 1, D: 32}} {
		e := d
		e.Audit = &CMORAudit{RequestDate: bad}
		if b, ok := e.AppendCompact([]byte("x"), CaseRow{}); ok || string(b) != "x" {
			t.Errorf("date %+v: encoded %q, %v; want refused and dst unchanged", bad, b, ok)
		}
		if stored := EncodeUscenteData(&e, CaseRow{}); !bytes.Equal(stored, e.Marshal()) {
			t.Errorf("date %+v: stored %q, want its JSON", bad, stored)
		}
	}
}

// Damaged compact data is an error, never a panic nor a huge allocation: every
// truncation, bytes added at the end, every single byte changed.
func TestCompactDamaged(t *testing.T) {
	d := fullUscenteData()
	row := CaseRow{Point: d.Case.POD}
	b, _ := d.AppendCompact(nil, row)
	for n := 1; n < len(b); n++ {
		if _, err := DecodeUscenteData(b[:n], row); err == nil {
			t.Errorf("truncated to %d of %d bytes: no error", n, len(b))
		}
	}
	if _, err := DecodeUscenteData(append(append([]byte(nil), b...), 0), row); err == nil {
		t.Error("a byte after the end: no error")
	}
	for i := 1; i < len(b); i++ {
		for _, v := range []byte{0x00, 0x7f, 0x80, 0xff} {
			c := append([]byte(nil), b...)
			c[i] = v
			_, _ = DecodeUscenteData(c, row) // may decode to other values; must not panic
		}
	}
	huge := []byte{compactV1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}
	if _, err := DecodeUscenteData(huge, row); err == nil {
		t.Error("a count of 4 billion mora notices in a few bytes: no error")
	}
}

// The compact form is a fraction of the JSON (the point of it), on a case as the
// morosi handler stores it (three invoices, a year of spend, its audit and inputs).
func TestCompactSize(t *testing.T) {
	d := typicalUscenteData()
	row := CaseRow{Point: d.Case.POD, CustomerID: d.Case.CustomerCF, CustomerName: d.Case.CustomerName, SwitchDate: d.Case.SwitchDate}
	b, _ := d.AppendCompact(nil, row)
	js := d.Marshal()
	t.Logf("compact %d bytes, JSON %d bytes", len(b), len(js))
	if len(b)*2 > len(js) {
		t.Errorf("compact %d bytes, JSON %d: want at most half", len(b), len(js))
	}
}

func typicalUscenteData() UscenteData {
	d := UscenteData{Case: Case{Sector: "E", POD: "IT023E00121943", CustomerCF: "RSSMRA85T10A562S", CustomerName: "Mario Rossi",
		SwitchDate: D(2025, 3, 1), Voltage: "BT", ClosingInvoiceIssued: true, TIFIndemnitiesPaid: true, ComplaintsAnswered: true},
		Audit: &CMORAudit{RequestDate: D(2025, 10, 15), Credit: 36_500, Estimate: 28_048, Base: 28_048, CMOR: 28_048,
			CreditWindowFrom: D(2024, 9, 1), CreditWindowTo: D(2025, 2, 28), Counted: []string{"F2025-0001", "F2025-0002", "F2025-0003"}},
		Inputs: []InputRef{{FileID: 2, Lines: []int{2, 3, 4}}}}
	for i := range 3 {
		d.Case.Invoices = append(d.Case.Invoices, Invoice{Number: "F2025-000" + string(rune('1'+i)), Issued: D(2024, time.Month(10+i), 10), Due: D(2024, time.Month(11+i), 9),
			PeriodFrom: D(2024, time.Month(9+i), 1), PeriodTo: D(2024, time.Month(10+i), 0), Amount: 15_000, Unpaid: 12_000, Reading: "E"})
		d.Case.Mora = append(d.Case.Mora, MoraNotice{Date: D(2025, 1, 10+i), Channel: "PE", Received: D(2025, 1, 11+i), Term: D(2025, 1, 31), MentionsCMOR: true})
	}
	for m := range 12 {
		d.Case.Spend = append(d.Case.Spend, MonthSpend{Month: D(2024, time.Month(3+m), 1), Amount: Amount(7_000 + m)})
	}
	return d
}

func BenchmarkUscenteDataEncode(b *testing.B) {
	d := typicalUscenteData()
	row := CaseRow{Point: d.Case.POD, CustomerID: d.Case.CustomerCF, CustomerName: d.Case.CustomerName, SwitchDate: d.Case.SwitchDate}
	b.Run("compact", func(b *testing.B) {
		for b.Loop() {
			EncodeUscenteData(&d, row)
		}
	})
	b.Run("json", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(&d); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkUscenteDataDecode(b *testing.B) {
	d := typicalUscenteData()
	row := CaseRow{Point: d.Case.POD, CustomerID: d.Case.CustomerCF, CustomerName: d.Case.CustomerName, SwitchDate: d.Case.SwitchDate}
	compact, js := EncodeUscenteData(&d, row), d.Marshal()
	b.Run("compact", func(b *testing.B) {
		for b.Loop() {
			if _, err := DecodeUscenteData(compact, row); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		for b.Loop() {
			if _, err := ParseUscenteData(js); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzDecodeUscenteData: any bytes after the compact mark decode or fail, without a
// panic; what decodes encodes back to a form that decodes to the same data.
func FuzzDecodeUscenteData(f *testing.F) {
	for _, d := range []UscenteData{fullUscenteData(), typicalUscenteData(), {}} {
		b, _ := d.AppendCompact(nil, CaseRow{Point: d.Case.POD})
		f.Add(b[1:]) // without the mark, which the target puts back
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		row := CaseRow{Point: "IT001E00000042", CustomerID: "X", CustomerName: "N", SwitchDate: D(2025, 3, 1)}
		d, err := DecodeUscenteData(append([]byte{compactV1}, b...), row)
		if err != nil {
			return
		}
		again, ok := d.AppendCompact(nil, row)
		if !ok {
			return // a date outside the form's range, read from damaged bytes
		}
		d2, err := DecodeUscenteData(again, row)
		if err != nil || !reflect.DeepEqual(d, d2) {
			t.Fatalf("re-encoded data decodes to %+v, %v; want %+v", d2, err, d)
		}
	})
}

// What AppendCompact accepts, DecodeUscenteData reads back: a date the decoder refuses
// (a year above 1<<31) must make the encoder say so (ok false, stored as JSON), not
// write a case no reader can open again.
func TestCompactEncodesOnlyWhatDecodes(t *testing.T) {
	for _, y := range []int{1<<31 + 1, 1 << 40} {
		d := UscenteData{Case: Case{Mora: []MoraNotice{{Date: Date{Y: y, M: 1, D: 1}}}}}
		b, ok := d.AppendCompact(nil, CaseRow{})
		if !ok {
			continue
		}
		if _, err := DecodeUscenteData(b, CaseRow{}); err != nil {
			t.Errorf("year %d: encoded (ok), but decoding fails: %v", y, err)
		}
	}
}
