package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/cmord/cmord/daemon"
	"github.com/cmord/cmord/daemon/digest"
	"github.com/cmord/cmord/daemon/mail"
)

func init() {
	register(&command{name: "digest", summary: "render the compliance digest now (--preview) or queue and send it (--send)",
		usage: "--preview [--html FILE] [--csv FILE] [--lang it|en] | --send", run: runDigest})
}

func runDigest(ctx context.Context, env *Env, args []string) int {
	fs := env.newFlags()
	preview := fs.Bool("preview", false, "print the text digest to stdout (read-only: nothing is queued, sent or recorded; the deadlines are computed as the daemon would, in memory)")
	send := fs.Bool("send", false, "queue the digest now and flush the mail outbox")
	htmlFile := fs.String("html", "", "with --preview: also write the HTML digest to `FILE`")
	csvFile := fs.String("csv", "", "with --preview: also write the CSV attachment to `FILE`")
	lang := fs.String("lang", "", "it or en (default: [digest] lang, then lang)")
	if code, ok := noArgs(env, fs, args, ""); !ok {
		return code
	}
	if *preview == *send {
		return env.fail(usageError{"give exactly one of --preview and --send"})
	}
	if *lang != "" && *lang != "it" && *lang != "en" {
		return env.fail(usageError{fmt.Sprintf("--lang %q: want it or en", *lang)})
	}
	if *send && (*htmlFile != "" || *csvFile != "") {
		return env.fail(usageError{"--html and --csv go with --preview"})
	}
	cfg, err := env.Config()
	if err != nil {
		return env.fail(err)
	}
	if *preview {
		env.ReadOnly() // cmord group members can preview; nothing is written
	}
	st, err := env.Store()
	if err != nil {
		return env.fail(err)
	}
	opts := digest.OptionsFromConfig(cfg)
	opts.Log = env.Logger()
	if *lang != "" {
		opts.Lang = *lang
	}
	now := time.Now()
	if *preview {
		// A preview writes nothing to the archive and attaches nothing: the body says
		// where the CSV went (--csv FILE, always the whole list), if anywhere.
		opts.ReadOnly = true
		d, err := digest.Build(ctx, st, opts, now)
		if err != nil {
			return env.fail(err)
		}
		// The body says how much of the list a digest sent now would attach (the
		// attachments are bounded); the CSV file gets the whole list.
		if err := d.PreviewBound(opts.Lang, opts.IncludePersonalData); err != nil {
			return env.fail(err)
		}
		d.AttachCSV, d.AttachXLSX, d.CSVFile = false, false, *csvFile
		_, text, html, csvData, err := d.Render(opts.Lang, opts.IncludePersonalData)
		if err != nil {
			return env.fail(err)
		}
		fmt.Fprint(env.Stdout, text)
		for _, out := range []struct {
			path string
			data []byte
		}{{*htmlFile, []byte(html)}, {*csvFile, csvData}} {
			if out.path == "" {
				continue
			}
			if err := os.WriteFile(out.path, out.data, 0o640); err != nil {
				return env.fail(err)
			}
		}
		return exitOK
	}
	if !cfg.Mail.Enabled() {
		return env.fail(usageError{"no [mail] host configured: nothing to send through (use --preview)"})
	}
	sender := mail.NewSender(mail.SMTP{Host: cfg.Mail.Host, Port: cfg.Mail.Port, TLS: cfg.Mail.TLS, Username: cfg.Mail.Username,
		PasswordFile: cfg.Mail.PasswordFile, From: cfg.Mail.From, HELO: cfg.Mail.HELO, Timeout: cfg.Mail.Timeout},
		st.Outbox(), env.Logger().With("component", "mail"))
	sender.Lang = opts.Lang
	sender.OnEvent = func(ev mail.Event) {
		if ev.Kind == mail.EventLate {
			if err := daemon.RecordMailLate(ctx, st, ev.SentAt); err != nil {
				env.Logger().Error("mail sent late: cannot record it", "err", err)
			}
		}
	}
	// A manual send has its own key: it never collides with (or suppresses) the
	// scheduled digest of the day, and running it twice in one second sends once.
	opts.DedupKey = digest.DedupKey(now) + ":manual:" + now.In(time.UTC).Format("150405")
	if _, err := digest.Send(ctx, st, sender, opts, now); err != nil {
		return env.fail(err)
	}
	n, err := sender.Flush(ctx)
	if err != nil {
		fmt.Fprintf(env.Stderr, "cmord digest: queued; not sent yet (%v): the daemon retries it\n", err)
		return exitFindings
	}
	fmt.Fprintf(env.Stdout, "digest queued and %s sent\n", plural(n, "message", "messages"))
	return exitOK
}
