// Command bench is oncehook's load and correctness harness.
//
//	bench run     send a scenario (or a suite) to receivers, check the sink, report
//	bench report  merge the JSON of several runs into RESULTS.md and a chart
//	bench sink    serve the counting sink that receivers deliver to
//	bench floor   serve the bare fasthttp handler that is the throughput floor
//	bench fill    add delivered events to a receiver's ledger with SQL
//
// scripts/bench.sh (`make bench`, `make bench-smoke`) starts the services
// and runs the standard suite.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage:
  bench run [flags]                      run scenarios; bench run -h lists the flags
  bench report [flags] RESULT.json...    write RESULTS.md and the chart from bench run -json files
  bench sink [-addr 127.0.0.1:8099]      serve the counting sink (SINK_URL=http://ADDR/, or for
                                         fanout DESTINATION_<NAME>_URL=http://ADDR/NAME)
  bench floor [-addr 127.0.0.1:8098]     serve the bare fasthttp floor
  bench fill -db URL -events N [flags]   add N delivered events to a receiver's ledger with SQL,
                                         spread over the last 30 days; bench fill -h lists the flags

Scenarios: floor, unique, fanout, storm, replay, mixed, spread, hostile.
Exit status: 0 ok; 1 a run broke a guarantee (loss, double delivery, a bad
request at the sink...); 2 the run could not be made.
`

// errBroken means a run broke a guarantee: exit status 1.
var errBroken = errors.New("a run broke a delivery guarantee")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errBroken):
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	default:
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errors.New("no command")
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "run":
		return runCmd(ctx, args)
	case "report":
		return reportCmd(args)
	case "sink":
		return sinkCmd(ctx, args)
	case "floor":
		return floorCmd(ctx, args)
	case "fill":
		return fillCmd(ctx, args)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
}
