package mail

import (
	"context"
	"fmt"
	"testing"

	"github.com/cmord/cmord/daemon/mail/smtpsink"
)

func BenchmarkBuild(b *testing.B) {
	m := digestMessage()
	for b.Loop() {
		if _, _, err := Build(m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkQueueAndFlush measures queue (SQLite, synchronous=FULL) + one SMTP
// transaction to the loopback sink (which fsyncs each .eml) per message.
func BenchmarkQueueAndFlush(b *testing.B) {
	e := newEnv(b, smtpsink.Options{}, SMTP{})
	i := 0
	for b.Loop() {
		i++
		if err := e.sender.Queue(context.Background(), fmt.Sprintf("bench:%d", i), "test", digestMessage()); err != nil {
			b.Fatal(err)
		}
		if n, err := e.flush(); n != 1 || err != nil {
			b.Fatal(n, err)
		}
	}
}
