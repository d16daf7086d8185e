package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// MarkdownOptions says what else goes into RESULTS.md.
type MarkdownOptions struct {
	// Setup is markdown describing the services and settings, put under
	// the machine (the script writes Postgres and Redis versions here).
	Setup string
	// Chart is the chart's path relative to the markdown file; empty for none.
	Chart string
	// Command is how the results were made, e.g. "make bench".
	Command string
	// NoTargets leaves out the targets (a smoke run is too short for them).
	NoTargets bool
}

// WriteMarkdown writes the suite as RESULTS.md.
func (s *Suite) WriteMarkdown(w io.Writer, o MarkdownOptions) {
	m := s.Machine
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("# Benchmark results")
	p("")
	if o.Command != "" {
		p("Made by `%s` on %s. Throughput is answers per second, retries included; the ratio is to the", o.Command, m.Date.Format("2006-01-02 15:04 MST"))
	} else {
		p("Made on %s. Throughput is answers per second, retries included; the ratio is to the", m.Date.Format("2006-01-02 15:04 MST"))
	}
	p("floor (a bare fasthttp handler that reads the body and answers 200) measured in the same run with")
	p("the same load. Latency is measured by the load generator from when each request was due.")
	p("")
	p("## Machine")
	p("")
	virt := ""
	if m.Virtual {
		virt = " (virtual machine)"
	}
	p("- CPU: %s, %d CPUs%s; the receiver, Postgres, Redis, the sink and the load generator share them", m.CPU, m.CPUs, virt)
	p("- Memory: %.1f GiB", float64(m.MemoryMiB)/1024)
	p("- OS: %s, kernel %s", m.OS, m.Kernel)
	p("- Go: %s", m.GoVersion)
	if setup := strings.TrimSpace(o.Setup); setup != "" {
		p("%s", setup)
	}
	p("")

	floor := s.FloorRPS()
	p("## Throughput and latency")
	p("")
	p("| run | mode | connections | req/s | × floor | events | accepted | duplicate | 4xx | 5xx | errors | retries | p50 ms | p90 ms | p99 ms | max ms |")
	p("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range s.Results {
		c, l := r.Counts, r.Latency
		mode := r.Mode + " loop"
		if r.Rate > 0 {
			mode = fmt.Sprintf("open loop, %.0f/s", r.Rate)
		}
		if r.Copies > 1 {
			mode += fmt.Sprintf(", %d copies", r.Copies)
		}
		if len(r.URLs) > 1 {
			mode += fmt.Sprintf(", %d receivers", len(r.URLs))
		} else if r.Scenario == Spread {
			mode += ", 1 receiver"
		}
		if len(r.Destinations) > 0 {
			mode += fmt.Sprintf(", %d destinations", len(r.Destinations))
		}
		if r.Hostile != nil {
			mode += ", under attack"
		}
		if w := r.Ledger; w != nil {
			mode += fmt.Sprintf(", ledger of %s", rowsLabel(w.Filled))
			if w.Pruning {
				mode += ", pruning"
			}
		}
		p("| %s | %s | %d | %.0f | %s | %d | %d | %d | %d | %d | %d | %d | %.2f | %.2f | %.2f | %.2f |",
			r.Name, mode, r.Connections, r.RPS, ratio(r.RPS, floor), r.Events, c.Accepted, c.Duplicate,
			c.Status4xx, c.Status5xx, c.Errors, c.Retries, l.P50, l.P90, l.P99, l.Max)
	}
	p("")
	p("Floor: %.0f req/s (mean of %d floor runs).", floor, s.count(Floor))
	p("")
	if got, fan, uni, ok := s.FanoutRatio(); ok {
		p("Fanout: %.0f req/s, %.2f× unique (%.0f req/s) in this suite; the target, reported only, is ≥ %.2f×.", fan, got, uni, targetFanoutRatio)
		p("")
	}
	for _, rr := range s.DeliveryRatios() {
		p("%s", rr.String())
		p("")
	}

	if !o.NoTargets {
		p("## Targets")
		p("")
		p("Reported, not enforced.")
		p("")
		p("| target | measured | |")
		p("| --- | --- | --- |")
		for _, t := range s.Targets() {
			p("| %s | %s | %s |", t.Goal, t.Measured, t.State)
		}
		p("")
	}

	s.writeLedger(p)
	s.writeVerification(p)

	if kb, _ := s.PeakRSS(); kb > 0 {
		p("## Receiver memory")
		p("")
		p("| after run | pid | RSS MB | peak RSS MB (VmHWM) |")
		p("| --- | ---: | ---: | ---: |")
		for _, r := range s.Results {
			for _, mem := range r.Memory {
				p("| %s | %d | %.0f | %.0f |", r.Name, mem.PID, float64(mem.RSSKB)*1024/1e6, float64(mem.PeakKB)*1024/1e6)
			}
		}
		p("")
	}
	if o.Chart != "" {
		if s.growth() != nil {
			p("## Throughput and p99 over time, and by ledger size")
			p("")
			p("![throughput and p99 latency per second of each run, and throughput by ledger size](%s)", o.Chart)
		} else {
			p("## Throughput and p99 over time")
			p("")
			p("![throughput and p99 latency per second of each run](%s)", o.Chart)
		}
		p("")
	}
	p("## The runs")
	p("")
	p("Events are signed, pretty-printed Stripe events of the usual types, mostly 1-4 KB, with a share")
	p("of 30-80 KB invoices (100-250 lines) and of thin events. Runs follow each other against the same database,")
	p("but fanout's receiver and the runs on a filled ledger have databases of their own.")
	p("")
	for _, r := range s.firstOfEach() {
		p("- **%s**: %s", r.Scenario, describe(r))
	}
	p("")
	p("Reproduce with `make bench` (`BENCH_DURATION`, `BENCH_CONNECTIONS`, `BENCH_RATE`, `BENCH_SCENARIOS`, `BENCH_GROWTH`, `BENCH_STEADY_ROWS`;")
	p("see `scripts/bench.sh`), or run `bin/bench run -h` against receivers of your own.")
}

func (s *Suite) writeVerification(p func(string, ...any)) {
	p("## End-to-end verification")
	p("")
	var settle float64
	for _, r := range s.Results {
		if r.Verify != nil {
			settle = r.Verify.SettleMS
		}
	}
	p("After each run the harness waits for every event answered 200 to reach the bench sink (which")
	p("counts deliveries by Idempotency-Key), then %.0f ms more for late duplicates, and compares what", settle)
	p("the receiver answered with what the sink got. Drain is from the last response to the last event's")
	p("first delivery. Bad requests are the mixed run's bad signatures, stale timestamps and malformed bodies.")
	p("A fanout run's events must reach each of its destinations (a path of the sink) exactly once: its row")
	p("sums the destinations (expected is events × destinations), and the rows under it show each.")
	p("")
	p("| run | expected | delivered | missing | over-delivered | unexpected | bad sent | bad at sink | bad answered 2xx | accepted twice | drain ms | result |")
	p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	var failures []string
	for _, r := range s.Results {
		v := r.Verify
		if v == nil {
			continue
		}
		drain := fmt.Sprintf("%.0f", v.DrainMS)
		if !v.Drained {
			drain = "> " + drain
		}
		result := "ok"
		if !v.OK() {
			result = "**FAIL**"
		}
		p("| %s | %d | %d | %d | %d | %d | %d | %d | %d | %d | %s | %s |", r.Name, v.Expected, v.Delivered, v.Missing,
			v.OverDelivered, v.Unexpected, v.BadSent, v.BadAtSink, v.BadAccepted, v.AcceptedTwice, drain, result)
		if r.Scenario == Fanout {
			for _, d := range v.Destinations {
				result := "ok"
				if !d.OK() {
					result = "**FAIL**"
				}
				p("| %s → /%s | %d | %d | %d | %d | %d | | %d | | | %.0f | %s |", r.Name, d.Dest, d.Expected, d.Delivered,
					d.Missing, d.OverDelivered, d.Unexpected, d.BadAtSink, d.DrainMS, result)
			}
		}
		for _, f := range v.Failures {
			failures = append(failures, fmt.Sprintf("- %s: %s", r.Name, f))
		}
		for _, k := range slices.Sorted(maps.Keys(v.Samples)) {
			failures = append(failures, fmt.Sprintf("  - %s, e.g. `%s`", k, strings.Join(v.Samples[k], "`, `")))
		}
	}
	p("")
	if len(failures) > 0 {
		p("Failures:")
		p("")
		for _, f := range failures {
			p("%s", f)
		}
		p("")
	}
}

func (s *Suite) count(scenario string) int {
	n := 0
	for _, r := range s.Results {
		if r.Scenario == scenario {
			n++
		}
	}
	return n
}

// firstOfEach returns the first result of each scenario, in suite order.
func (s *Suite) firstOfEach() []*Result {
	var out []*Result
	seen := map[string]bool{}
	for _, r := range s.Results {
		if !seen[r.Scenario] {
			seen[r.Scenario] = true
			out = append(out, r)
		}
	}
	return out
}

// describe says what a scenario sent, with the run's own numbers.
func describe(r *Result) string {
	switch r.Scenario {
	case Floor:
		return "the unique load against `bench floor`, a bare fasthttp handler that reads the body and answers 200: the yardstick."
	case Unique:
		return "every event new."
	case Fanout:
		return fmt.Sprintf("the unique load to a receiver with %d destinations, all taking every event type, each an HTTP "+
			"destination on its own path of the sink (/%s): every event must reach each exactly once.",
			len(r.Destinations), strings.Join(r.Destinations, ", /"))
	case Ordered:
		return fmt.Sprintf("every event new, about %d objects (data.object.id), to a receiver whose destination (the sink's /%s) "+
			"has DESTINATION_O_ORDER_KEY=data.object.id: each object's events must arrive in created order.", OrderKeys, OrderedDestination)
	case Unordered:
		return fmt.Sprintf("ordered's load (%d objects) to the same destination without the order key: ordered's yardstick.", OrderKeys)
	case Storm:
		return fmt.Sprintf("each event sent %d times at once.", r.Copies)
	case Replay:
		return fmt.Sprintf("%d events accepted in an unmeasured warm-up, then sent again: late duplicates.", r.WarmupEvents)
	case Mixed:
		bad := int64(0)
		if r.Verify != nil {
			bad = r.Verify.BadSent
		}
		return fmt.Sprintf("new events and bad signatures, stale timestamps and malformed bodies (%d of %d), which must get 400.", bad, r.Events)
	case Spread:
		if len(r.URLs) == 1 {
			return fmt.Sprintf("each event sent %d times at once, to one receiver (spread's yardstick: more instances should be no slower).", r.Copies)
		}
		return fmt.Sprintf("each event sent %d times at once, each copy to another of %d receivers sharing Postgres and Redis.", r.Copies, len(r.URLs))
	case Hostile:
		h := r.Hostile
		if h == nil {
			return "every event new, under attack."
		}
		return fmt.Sprintf("every event new, while another address holds %d connections that send nothing, %d bodies "+
			"(1 MB declared) sent a byte a second and %d requests whose headers come a byte a second; "+
			"%d of them were open when the run began, and %d were opened again after the receiver cut them.",
			h.Idle, h.SlowBodies, h.SlowHeaders, h.Held, h.Reconnects)
	}
	return ""
}
