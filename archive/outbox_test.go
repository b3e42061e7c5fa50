package archive

import (
	"bytes"
	"context"
	"testing"
	"time"
)

func testOutboxMessage(key string) OutboxMessage {
	return OutboxMessage{
		DedupKey: key, Kind: "digest", MessageID: key + "@cmord.test", Sender: "cmord@example.it",
		Recipients: []string{"compliance@example.it", "ops@example.it"}, Subject: "Digest " + key,
		EML: []byte("Message-ID: <" + key + "@cmord.test>\r\nSubject: Digest\r\n\r\nbody\r\n"),
	}
}

func TestOutboxLifecycle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openScheduleTest(t, dir)
	ob := st.Outbox()
	t0 := time.Now()

	id, dup, err := ob.Enqueue(ctx, testOutboxMessage("digest:2025-10-26"))
	if err != nil || dup || id == 0 {
		t.Fatalf("enqueue: %d %v %v", id, dup, err)
	}
	id2, dup, err := ob.Enqueue(ctx, testOutboxMessage("digest:2025-10-26"))
	if err != nil || !dup || id2 != id {
		t.Fatalf("second enqueue: %d %v %v, want dup of %d", id2, dup, err, id)
	}
	if _, _, err := ob.Enqueue(ctx, OutboxMessage{DedupKey: "x"}); err == nil {
		t.Error("incomplete message accepted")
	}
	bad := testOutboxMessage("bad")
	bad.Recipients = []string{"a@b.it\r\nRCPT TO:<evil@x>"}
	if _, _, err := ob.Enqueue(ctx, bad); err == nil {
		t.Error("recipient with CRLF accepted")
	}

	due, err := ob.Due(ctx, t0.Add(time.Second))
	if err != nil || len(due) != 1 {
		t.Fatalf("due: %v %v", due, err)
	}
	m := due[0]
	if m.State != OutboxQueued || len(m.Recipients) != 2 || m.MessageID != "digest:2025-10-26@cmord.test" ||
		!bytes.Equal(m.EML, testOutboxMessage("digest:2025-10-26").EML) {
		t.Errorf("stored %+v", m)
	}

	// A failed connection before MarkSending still counts an attempt.
	if n, err := ob.MarkRetry(ctx, id, "dial tcp: connection refused", t0.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("retry: %d %v", n, err)
	}
	if due, _ := ob.Due(ctx, t0.Add(time.Second)); len(due) != 0 {
		t.Errorf("due before next attempt: %v", due)
	}
	// An attempt: sending, then the process dies before the server answers.
	if err := ob.MarkSending(ctx, id); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st = openScheduleTest(t, dir)
	ob = st.Outbox()
	due, _ = ob.Due(ctx, t0.Add(2*time.Minute))
	if len(due) != 1 || due[0].State != OutboxSending || due[0].Attempts != 2 {
		t.Fatalf("after restart: %+v", due)
	}
	if n, _ := ob.Pending(ctx); n != 1 {
		t.Errorf("pending = %d", n)
	}
	if err := ob.MarkSending(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := ob.MarkSent(ctx, id, t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if due, _ := ob.Due(ctx, t0.Add(time.Hour)); len(due) != 0 {
		t.Errorf("sent message still due: %v", due)
	}
	if err := ob.MarkSending(ctx, id); err == nil {
		t.Error("MarkSending of a sent message accepted")
	}
	if _, err := ob.MarkRetry(ctx, id, "x", t0); err == nil {
		t.Error("MarkRetry of a sent message accepted")
	}
	if err := ob.MarkSent(ctx, id, t0); err == nil {
		t.Error("MarkSent twice accepted")
	}
	got, err := ob.Get(ctx, id)
	if err != nil || got.State != OutboxSent || got.Attempts != 3 || got.SentAt.IsZero() {
		t.Errorf("final %+v %v", got, err)
	}
	if n, _ := ob.Pending(ctx); n != 0 {
		t.Errorf("pending = %d", n)
	}
	if _, dup, _ := ob.Enqueue(ctx, testOutboxMessage("digest:2025-10-26")); !dup {
		t.Error("a sent digest could be queued again")
	}
	evs, err := st.Events(ctx, EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	if len(types) != 2 || types[0] != "MAIL_QUEUED" || types[1] != "MAIL_SENT" {
		t.Errorf("events %v", types)
	}
}
