package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/cmord/cmord/daemon/sftpx"
)

func init() {
	register(&command{name: "hostkey fetch", summary: "print an SSH server's host keys and SHA256 fingerprints, to confirm out of band (trusts nothing)",
		usage: "HOST[:PORT]", run: runHostkeyFetch})
}

func runHostkeyFetch(ctx context.Context, env *Env, args []string) int {
	fs := env.newFlags()
	timeout := fs.Duration("timeout", 15*time.Second, "connection timeout")
	pos, code, ok := parseInterspersed(env, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return env.fail(usageError{"expects HOST[:PORT]"})
	}
	hostport := pos[0]
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		hostport = net.JoinHostPort(hostport, "22")
	}
	keys, err := sftpx.FetchHostKey(ctx, hostport, *timeout)
	if err != nil {
		return env.fail(err)
	}
	w := env.Stdout
	fmt.Fprintf(w, "Host keys offered by %s (NOT trusted; confirm each fingerprint with the server's operator out of band):\n\n", hostport)
	for _, k := range keys {
		fmt.Fprintf(w, "  %-22s %s\n", k.Type, k.Fingerprint)
	}
	fmt.Fprintln(w, "\nOnce confirmed, add the matching line(s) to the endpoint's known_hosts file:")
	for _, k := range keys {
		fmt.Fprintln(w, k.KnownHostsLine)
	}
	return exitOK
}
