package uscente

import (
	"fmt"
	"testing"

	"github.com/cmord/cmord/archive"
	"github.com/cmord/cmord/daemon/family"
	"github.com/cmord/cmord/flows"
)

// A practice's creation note is written without fmt: it is the text fmt's %s gave,
// for a ready case and one waiting for its window, with lines in a run, scattered or
// one, and amounts negative, zero and large.
func TestCreationNoteAsFmt(t *testing.T) {
	j := &morosiJob{in: &family.Input{File: archive.File{Name: "morosi 2025;03.csv"}}}
	for _, tc := range []struct {
		lines []int
		out   flows.MorosiOutcome
	}{
		{[]int{2, 3, 4}, flows.MorosiOutcome{State: flows.StateReady, Result: flows.CMORResult{CMOR: 2000, Credit: 42439, Estimate: 40000}}},
		{[]int{7}, flows.MorosiOutcome{State: flows.StateWaitingWindow, WindowOpen: flows.D(2025, 4, 1), Result: flows.CMORResult{CMOR: 0, Credit: -5, Estimate: 123456789}}},
		{[]int{7, 12, 30}, flows.MorosiOutcome{State: flows.StateWaitingWindow, Result: flows.CMORResult{CMOR: 1}}},
	} {
		mc := &flows.MorosiCase{Lines: tc.lines}
		r := tc.out.Result
		want := fmt.Sprintf("%s; CMOR %s (credit %s, estimate %s)", flows.LinesText(mc.Lines), r.CMOR, r.Credit, r.Estimate)
		if tc.out.State == flows.StateWaitingWindow {
			want += fmt.Sprintf("; request window opens %s", tc.out.WindowOpen)
		}
		if got := j.creationNote(mc, tc.out); got != want {
			t.Errorf("note %q, want %q", got, want)
		}
	}
}
