package main

import (
	"context"
	"fmt"

	"github.com/cmord/cmord/docs/manuale"
)

func init() {
	register(&command{name: "manuale", summary: "print the Italian manual for operators and compliance (folders, receipts, digest, exceptions, states, deadlines)",
		run: func(ctx context.Context, env *Env, args []string) int {
			if code, ok := noArgs(env, env.newFlags(), args, ""); !ok {
				return code
			}
			fmt.Fprint(env.Stdout, manuale.Text)
			return exitOK
		}})
}
