// Command receiver is the oncehook daemon: it receives Stripe webhooks,
// stores each event once and delivers it to the sink.
//
//	receiver [serve]          migrate, then serve (the default)
//	receiver migrate          apply the embedded migrations and exit
//	receiver send-test-event  post one signed test event to a running receiver
//
// Configuration comes from the environment; see README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: receiver [serve | migrate | send-test-event [-url URL] [-id EVT_ID]]

Configuration is read from the environment (see README.md).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "receiver:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx)
	case "migrate":
		return migrate(ctx)
	case "send-test-event":
		return sendTestEvent(ctx, args)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
}
