// Command receiver is the oncehook daemon: it receives Stripe webhooks,
// stores each event once and delivers it to the destinations it matches.
//
//	receiver [serve]          migrate, then serve (the default)
//	receiver migrate          apply the embedded migrations and exit
//	receiver send-test-event  post one signed test event to a running receiver
//	receiver events list|show list stored events, or show one with its deliveries and history
//	receiver replay           put deliveries back to pending, or backfill a destination
//	receiver destinations     each destination's filter, URL and delivery counts
//	receiver reconcile        store the events Stripe could not deliver, from its Events API
//
// Configuration comes from the environment; see README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

const usage = `usage:
  receiver [serve]                 migrate, then serve
  receiver migrate                 apply the embedded migrations
  receiver send-test-event [-url URL] [-id EVT_ID]
  receiver events list [--status pending|delivered|dead|unrouted] [--destination NAME] [--type T] [--since D] [--limit N] [--json]
  receiver events show EVT_ID [--json]
  receiver replay EVT_ID... [--destination NAME]
  receiver replay --status dead [--destination NAME] [--since D]
  receiver replay --status delivered --since D [--destination NAME]
  receiver replay --destination NAME --since D [--force]   backfill a destination added later
  receiver destinations [--json]
  receiver reconcile [--since 72h] [--all] [--types T,...] [--dry-run] [--force]

Configuration is read from the environment (see README.md).
`

// gcPercent trades memory for CPU: the heap is small (tens of MB), and the
// request path allocates, so collecting less often is cheap. GOGC overrides it.
const gcPercent = 250

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
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
	case "events":
		return eventsCmd(ctx, args, os.Stdout)
	case "replay":
		return replayCmd(ctx, args, os.Stdout)
	case "destinations":
		return destinationsCmd(ctx, args, os.Stdout)
	case "reconcile":
		return reconcileCmd(ctx, args, os.Stdout)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
}
