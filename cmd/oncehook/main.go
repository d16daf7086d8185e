// Command oncehook receives Stripe webhooks, stores each event once and
// delivers it to the destinations it matches; its subcommands operate it.
//
//	oncehook [serve]          migrate, then serve (the default)
//	oncehook migrate          apply the embedded migrations and exit
//	oncehook send-test-event  post one signed test event to a running receiver
//	oncehook events list|show list stored events, or show one with its deliveries and history
//	oncehook replay           put deliveries back to pending, or backfill a destination
//	oncehook destinations     each destination's filter, URL and delivery counts
//	oncehook reconcile        store the events Stripe could not deliver, from its Events API
//	oncehook stripe endpoint create  create the webhook endpoint that sends Stripe's events here
//	oncehook config           check the environment and print the configuration, secrets redacted
//	oncehook version          the version, commit, Go and schema version of this binary
//	oncehook completion       shell completion scripts
//
// Configuration comes from the environment; see docs/configuration.md. Every command
// answers --help without side effects.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// gcPercent trades memory for CPU: the heap is small (tens of MB), and the
// request path allocates, so collecting less often is cheap. GOGC overrides it.
const gcPercent = 250

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := execute(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		// An error may carry text from outside (Stripe's, a sink's, a
		// server's): escaped, so that it cannot act on the terminal.
		fmt.Fprintln(os.Stderr, "oncehook:", termLines(err.Error()))
		os.Exit(1)
	}
}

// execute runs the command args name, writing its output to out.
func execute(ctx context.Context, args []string, out io.Writer) error {
	root := newRootCmd()
	root.SetArgs(longDashes(root, args))
	root.SetOut(out)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}
