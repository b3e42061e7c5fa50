package archive

import (
	"encoding/json"
	"reflect"
	"testing"
)

// decodeRequestData gives what json.Unmarshal gives for every text, the hand path
// or not; the table says which texts the hand path takes.
func TestDecodeRequestDataAsJSON(t *testing.T) {
	tests := []struct {
		text string
		fast bool // flatStringMap reads it
	}{
		{`{}`, true},
		{`{"IMPORTO_CREDITO":"120.00","IMPORTO_INDENNIZZO":"120.00","STIMA_SPESA_4_MESI":"320.00"}`, true},
		{`{"a":"b"}`, true},
		{`{"":""}`, true},
		{`{"a":"1","a":"2"}`, true}, // the later key wins, as in json.Unmarshal
		{`{"k":"x y ; : , { } [ ] / ~"}`, true},
		{`{ "a":"b"}`, false},
		{`{"a" : "b"}`, false},
		{`{"a":"b"} `, false},
		{`{"a":"b\"c"}`, false},
		{`{"a":"\u00e8"}`, false},
		{`{"a":"è"}`, false},
		{"{\"a\":\"\xff\"}", false},
		{"{\"a\":\"x\ty\"}", false},
		{`{"a":1}`, false},
		{`{"a":null}`, false},
		{`{"a":"b",}`, false},
		{`{"a":"b"`, false},
		{`{"a":"b"}x`, false},
		{`{"a":"b"}}`, false},
		{`{"a"}`, false},
		{`{,}`, false},
		{`null`, false},
		{``, false},
		{`{`, false},
		{`[]`, false},
		{`"x"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			var want map[string]string
			wantErr := json.Unmarshal([]byte(tt.text), &want)
			var got map[string]string
			decodeRequestData(tt.text, &got)
			if !reflect.DeepEqual(got, want) || (got == nil) != (want == nil) {
				t.Errorf("decodeRequestData(%q) = %#v, json.Unmarshal %#v (%v)", tt.text, got, want, wantErr)
			}
			if _, ok := flatStringMap(tt.text); ok != tt.fast {
				t.Errorf("flatStringMap(%q) ok = %v, want %v", tt.text, ok, tt.fast)
			}
		})
	}
	// Into a map already holding values (none of cmord's readers does this): merged,
	// as json.Unmarshal merges.
	m := map[string]string{"x": "1"}
	decodeRequestData(`{"a":"b"}`, &m)
	if want := map[string]string{"x": "1", "a": "b"}; !reflect.DeepEqual(m, want) {
		t.Errorf("into a map holding values: %v, want %v", m, want)
	}
}

func FuzzDecodeRequestData(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":"b"}`, `{"a":"1","b":"2"}`, `{"a":"b\"c"}`, `{"a":1}`, `null`, `{"a":"b",}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		var want map[string]string
		_ = json.Unmarshal([]byte(text), &want)
		var got map[string]string
		decodeRequestData(text, &got)
		if !reflect.DeepEqual(got, want) || (got == nil) != (want == nil) {
			t.Errorf("decodeRequestData(%q) = %#v, json.Unmarshal %#v", text, got, want)
		}
	})
}
