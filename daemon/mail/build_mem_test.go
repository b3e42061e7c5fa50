package mail

import (
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// TestBuildLargeAttachmentAllocatesOnce builds a message with a 16 MiB attachment (the
// full exception list of a big backlog's digest) and checks the memory it allocates.
// go-mail encodes each part into a buffer of its own grown by doubling (about twice the
// encoded part, its design); on top of that Build allocates the message once, sized, no
// longer a copy of the attachment (AttachReader's io.ReadAll) and a message buffer grown
// by doubling: 105 MiB for a 21 MiB message before, 70 now. The attachment comes back
// intact.
func TestBuildLargeAttachmentAllocatesOnce(t *testing.T) {
	data := make([]byte, 16<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.UintN(256))
	}
	msg := Message{From: "cmord@example.it", To: []string{"compliance@example.it"}, Subject: "Riepilogo CMOR",
		Text: "Riepilogo", HTML: "<p>Riepilogo</p>",
		Attachments: []Attachment{{Name: "cmord-eccezioni.csv", ContentType: "text/csv; charset=utf-8", Data: data}}}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	eml, _, err := Build(msg)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	if limit := uint64(len(eml)) * 4; allocated > limit {
		t.Errorf("building a %d MiB message allocated %d MiB, more than 4 times the message", len(eml)>>20, allocated>>20)
	}
	// The attachment's base64 body, between its part's blank line and the boundary.
	s := string(eml)
	i := strings.Index(s, `filename="cmord-eccezioni.csv"`)
	if i < 0 {
		t.Fatal("no attachment in the message")
	}
	body := s[i+strings.Index(s[i:], "\r\n\r\n")+4:]
	body = body[:strings.Index(body, "\r\n--")]
	got, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(body, "\r\n", ""))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("the attachment does not come back intact (%d bytes, err %v)", len(got), err)
	}
}

// TestEncodedSizeIsAnUpperBound: the buffer Build sizes once must hold the message,
// whatever the bodies hold: a body of accented letters is more than 3 bytes a byte in
// quoted-printable (each line of 76 characters carries 25 of them and a soft break),
// and a thousand recipients are more than the headers' allowance. An underestimate is
// not an error (the buffer grows, doubling), only the allocation Build means to avoid.
func TestEncodedSizeIsAnUpperBound(t *testing.T) {
	var to []string
	for i := range 3000 {
		to = append(to, strings.Repeat("x", 30)+"."+strings.Repeat("y", 20)+"@"+strings.Repeat("z", 10)+".example.it"+string(rune('a'+i%26)))
	}
	for _, tc := range []struct {
		name string
		msg  Message
	}{
		{"accented bodies", Message{From: "cmord@example.it", To: []string{"compliance@example.it"}, Subject: "Riepilogo CMOR",
			Text: strings.Repeat("è", 1<<20), HTML: "<p>" + strings.Repeat("à", 1<<20) + "</p>"}},
		{"many recipients", Message{From: "cmord@example.it", To: to, Subject: "Riepilogo CMOR — è", Text: "Riepilogo"}},
		{"attachment", Message{From: "cmord@example.it", To: []string{"compliance@example.it"}, Subject: "Riepilogo CMOR", Text: "x",
			Attachments: []Attachment{{Name: "a.csv", Data: bytes.Repeat([]byte{0xff}, 1<<20+1)}}}},
	} {
		eml, _, err := Build(tc.msg)
		if err != nil {
			t.Fatal(err)
		}
		if n := encodedSize(tc.msg); len(eml) > n {
			t.Errorf("%s: the message is %d bytes, encodedSize %d", tc.name, len(eml), n)
		}
	}
}
