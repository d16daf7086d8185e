package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/oncehook/oncehook/bench"
)

// runCmd runs each scenario of -scenarios in turn and reports.
func runCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench run", flag.ContinueOnError)
	var (
		scenarios  = fs.String("scenarios", "unique", "comma-separated scenarios, each optionally scenario:label: "+strings.Join(bench.Scenarios, ", "))
		urls       = fs.String("url", "http://127.0.0.1:8080/webhooks/stripe", "receiver webhook URL(s), comma-separated; spread uses all, the others the first")
		floorURL   = fs.String("floor-url", "", "the floor's URL (bench floor), for the floor scenario")
		sinkURL    = fs.String("sink", "", "the bench sink's base URL (bench sink); empty: no end-to-end check")
		secret     = fs.String("secret", "", "signing secret (default $STRIPE_WEBHOOK_SECRET)")
		conns      = fs.Int("c", 64, "connections: requests in flight (closed loop), and the connection limit per URL")
		duration   = fs.Duration("d", 10*time.Second, "how long each scenario sends")
		events     = fs.Int("n", 0, "send this many events per scenario instead of running for -d")
		rate       = fs.Float64("rate", 0, "open loop: requests per second whatever the answers (0: closed loop)")
		copies     = fs.Int("copies", 0, "copies per event for storm (default 8) and spread (default 2)")
		dests      = fs.String("destinations", strings.Join(bench.FanoutDestinations, ","), "fanout: the receiver's DESTINATIONS, each delivering to the sink's path /NAME")
		natsURL    = fs.String("nats", "", "nats: the NATS server, nats://host:port, where the stream "+bench.NATSStream+" (subjects "+bench.NATSSubjectPrefix+">) is created and read")
		amqpURL    = fs.String("amqp", "", "rabbitmq: the broker and vhost, amqp://user:password@host:port/VHOST, where exchange "+bench.AMQPExchange+" and queue "+bench.AMQPQueue+" are declared and drained")
		badShare   = fs.Float64("bad-share", 0.1, "mixed: share of bad signatures, stale timestamps and malformed bodies")
		largeShare = fs.Float64("large-share", 0.05, "share of 30-80 KB invoices with 100-250 lines")
		thinShare  = fs.Float64("thin-share", 0.02, "share of thin events (v2.core.event)")
		replaySet  = fs.Int("replay-set", 10000, "replay: events accepted in the unmeasured warm-up")
		hIdle      = fs.Int("hostile-idle", 3000, "hostile: connections that send nothing")
		hBodies    = fs.Int("hostile-slow-bodies", 200, "hostile: bodies sent a byte a second")
		hHeaders   = fs.Int("hostile-slow-headers", 500, "hostile: requests whose headers come a byte a second")
		drain      = fs.Duration("drain-timeout", 30*time.Second, "how long to wait for every event to reach the sink")
		settle     = fs.Duration("settle", time.Second, "how long to wait after the drain for late duplicates")
		retryFor   = fs.Duration("retry-for", 30*time.Second, "how long a request answered 5xx or lost in transport is retried, from its first failure")
		timeout    = fs.Duration("timeout", 30*time.Second, "bound on one request")
		wait       = fs.Duration("wait", 60*time.Second, "wait this long for the receivers, floor and sink to be ready")
		pids       = fs.String("pids", "", "comma-separated receiver pids whose memory (VmRSS, VmHWM) is recorded")
		ledgerDB   = fs.String("ledger-db", "", "the receivers' database: record the ledger's inserts and deletes over each measured phase")
		filled     = fs.Int64("ledger-filled", 0, "with -ledger-db: the events bench fill put in the ledger, reported")
		pruning    = fs.Duration("pruning", 0, "with -ledger-db: the receivers' RETENTION, shorter than the filled events' age: wait until the pruner deletes before each measured phase")
		jsonPath   = fs.String("json", "", "write the results as JSON here")
		mdPath     = fs.String("md", "", "write a markdown report here")
		chartPath  = fs.String("chart", "", "write a PNG chart of throughput and p99 over time here")
		quiet      = fs.Bool("q", false, "no progress lines")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("run: unexpected argument %q", fs.Arg(0))
	}
	if *secret == "" {
		*secret = os.Getenv("STRIPE_WEBHOOK_SECRET")
	}
	if *secret == "" {
		return errors.New("run: no signing secret: set -secret or STRIPE_WEBHOOK_SECRET")
	}
	pidList, err := parsePIDs(*pids)
	if err != nil {
		return err
	}
	var ledger *bench.LedgerConfig
	switch {
	case *ledgerDB != "":
		ledger = &bench.LedgerConfig{DatabaseURL: *ledgerDB, Filled: *filled, Retention: *pruning}
	case *filled != 0 || *pruning != 0:
		return errors.New("run: -ledger-filled and -pruning need -ledger-db")
	}
	receivers := splitList(*urls)
	var sink *bench.SinkClient
	if *sinkURL != "" {
		if sink, err = bench.NewSinkClient(*sinkURL); err != nil {
			return err
		}
	}
	plan, err := parseScenarios(*scenarios)
	if err != nil {
		return err
	}
	if err := waitReady(ctx, plan, receivers, *floorURL, *sinkURL, *wait); err != nil {
		return err
	}

	progress := os.Stdout
	if *quiet {
		progress = nil
	}
	suite := &bench.Suite{Machine: bench.ThisMachine()}
	for _, p := range plan {
		cfg := bench.RunConfig{
			Scenario: p.scenario, Name: p.name, URLs: receivers, Secret: *secret, Sink: sink, Destinations: splitList(*dests),
			NATSURL: *natsURL, AMQPURL: *amqpURL,
			Connections: *conns, Duration: *duration, Events: *events, Rate: *rate, Copies: *copies,
			BadShare: *badShare, LargeShare: orNone(*largeShare), ThinShare: orNone(*thinShare),
			ReplaySet: *replaySet, DrainTimeout: *drain, Settle: *settle, RetryFor: *retryFor,
			Timeout: *timeout, PIDs: pidList, Ledger: ledger, Progress: progress,
			Hostile: bench.HostileConfig{Idle: orNoneInt(*hIdle), SlowBodies: orNoneInt(*hBodies), SlowHeaders: orNoneInt(*hHeaders)},
		}
		if *events > 0 {
			cfg.Duration = 0
			cfg.ReplaySet = min(*replaySet, *events)
		}
		if p.scenario == bench.Floor {
			cfg.URLs, cfg.Sink, cfg.PIDs, cfg.Ledger = []string{*floorURL}, nil, nil, nil
		}
		res, err := bench.Run(ctx, cfg)
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		suite.Results = append(suite.Results, res)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		printSummary(res)
	}
	fmt.Println()
	if err := writeOutputs(suite, *jsonPath, *mdPath, *chartPath, bench.MarkdownOptions{Command: "bench run"}); err != nil {
		return err
	}
	if !suite.OK() {
		return errBroken
	}
	return nil
}

// printSummary prints one line about a finished run.
func printSummary(r *bench.Result) {
	line := fmt.Sprintf("%-14s done: %.0f req/s over %.1fs, p99 %.2f ms, %d 4xx, %d 5xx, %d errors",
		r.Name, r.RPS, r.Seconds, r.Latency.P99, r.Counts.Status4xx, r.Counts.Status5xx, r.Counts.Errors)
	if v := r.Verify; v != nil {
		state := "ok"
		if !v.OK() {
			state = "FAIL: " + strings.Join(v.Failures, "; ")
		}
		where := "sink"
		if n := len(r.Destinations); n > 0 {
			where = fmt.Sprintf("%d destinations", n)
		}
		line += fmt.Sprintf("; %s: %d of %d delivered, drain %.0f ms: %s", where, v.Delivered, v.Expected, v.DrainMS, state)
	}
	if w := r.Ledger; w != nil {
		line += fmt.Sprintf("; ledger: %.0f inserts/s, %.0f deletes/s", w.InsertRate(), w.DeleteRate())
	}
	fmt.Println(line)
}

type planned struct{ scenario, name string }

// parseScenarios reads "floor:before,unique,storm".
func parseScenarios(list string) ([]planned, error) {
	var plan []planned
	for _, item := range splitList(list) {
		s, label, _ := strings.Cut(item, ":")
		known := false
		for _, k := range bench.Scenarios {
			known = known || s == k
		}
		if !known {
			return nil, fmt.Errorf("run: unknown scenario %q (want %s)", s, strings.Join(bench.Scenarios, ", "))
		}
		name := s
		if label != "" {
			name = s + " (" + label + ")"
		}
		plan = append(plan, planned{s, name})
	}
	if len(plan) == 0 {
		return nil, errors.New("run: no scenario")
	}
	return plan, nil
}

// waitReady waits for the servers the plan needs.
func waitReady(ctx context.Context, plan []planned, receivers []string, floorURL, sinkURL string, timeout time.Duration) error {
	bases := map[string]bool{}
	for _, p := range plan {
		switch {
		case p.scenario == bench.Floor && floorURL == "":
			return errors.New("run: the floor scenario needs -floor-url")
		case p.scenario == bench.Floor:
			bases[baseOf(floorURL)] = true
		case p.scenario == bench.Spread:
			for _, u := range receivers {
				bases[baseOf(u)] = true
			}
		case len(receivers) > 0:
			bases[baseOf(receivers[0])] = true
		}
	}
	if sinkURL != "" {
		bases[baseOf(sinkURL)] = true
	}
	for b := range bases {
		if err := bench.WaitReady(ctx, b, timeout); err != nil {
			return err
		}
	}
	return nil
}

// baseOf returns scheme://host of a URL.
func baseOf(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	host, _, _ := strings.Cut(rest, "/")
	return scheme + "://" + host
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parsePIDs(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("run: -pids: %q is not a process id", f)
		}
		out = append(out, pid)
	}
	return out, nil
}

// orNone maps a share of 0 to "none" (negative) for bench.GeneratorConfig,
// where 0 means the default.
func orNone(share float64) float64 {
	if share == 0 {
		return -1
	}
	return share
}

// orNoneInt maps a count of 0 to "none" (negative) for bench.HostileConfig,
// where 0 means the default.
func orNoneInt(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
