package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
)

// Suite is what `bench run` writes as JSON: the machine and every result;
// `bench report` adds the ledger fills and the growth curve.
type Suite struct {
	Machine Machine   `json:"machine"`
	Results []*Result `json:"results"`
	// Fills are the ledger fills (bench fill) made for the runs, in order.
	Fills []FillStats `json:"fills,omitempty"`
	// Growth is unique's and storm's throughput by ledger size, derived
	// from Results when written.
	Growth []GrowthPoint `json:"growth,omitempty"`
}

// ReadSuites reads and concatenates suites written by `bench run -json`;
// the machine is the first file's.
func ReadSuites(paths ...string) (*Suite, error) {
	var all Suite
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var s Suite
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		if i == 0 {
			all.Machine = s.Machine
		}
		all.Results = append(all.Results, s.Results...)
		all.Fills = append(all.Fills, s.Fills...)
	}
	return &all, nil
}

// WriteJSON writes s to path, indented, with its growth curve.
func (s *Suite) WriteJSON(path string) error {
	s.Growth = s.growth()
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// FloorRPS is the mean throughput of the suite's floor runs; 0 if none.
func (s *Suite) FloorRPS() float64 {
	var sum float64
	var n int
	for _, r := range s.Results {
		if r.Scenario == Floor {
			sum += r.RPS
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// OK reports whether no run broke a guarantee.
func (s *Suite) OK() bool {
	for _, r := range s.Results {
		if !r.OK() {
			return false
		}
	}
	return true
}

func ratio(rps, floor float64) string {
	if floor == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", rps/floor)
}

func verdict(r *Result) string {
	switch {
	case r.Verify == nil:
		return "-"
	case r.Verify.OK():
		return "ok"
	default:
		return "FAIL"
	}
}

// destinationsLine says what reached each destination of a run.
func destinationsLine(v *Verification) string {
	var parts []string
	for _, d := range v.Destinations {
		state := "each once"
		if !d.OK() {
			state = fmt.Sprintf("%d missing, %d over-delivered, %d unexpected", d.Missing, d.OverDelivered, d.Unexpected+d.BadAtSink)
		}
		parts = append(parts, fmt.Sprintf("/%s %d of %d, %s", d.Dest, d.Delivered, d.Expected, state))
	}
	return strings.Join(parts, "; ")
}

// WriteTable prints the results as a terminal table.
func (s *Suite) WriteTable(w io.Writer) {
	floor := s.FloorRPS()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\treq/s\tx floor\tevents\taccepted\tduplicate\t4xx\t5xx\terrors\tretries\tp50 ms\tp90 ms\tp99 ms\tmax ms\tdrain ms\tverify\t")
	for _, r := range s.Results {
		c, l := r.Counts, r.Latency
		drain := "-"
		if r.Verify != nil {
			drain = fmt.Sprintf("%.0f", r.Verify.DrainMS)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t%s\t\n",
			r.Name, r.RPS, ratio(r.RPS, floor), r.Events, c.Accepted, c.Duplicate, c.Status4xx, c.Status5xx,
			c.Errors, c.Retries, l.P50, l.P90, l.P99, l.Max, drain, verdict(r))
	}
	_ = tw.Flush()
	if got, fan, uni, ok := s.FanoutRatio(); ok {
		fmt.Fprintf(w, "fanout/unique: %.2f (%.0f of %.0f req/s; target ≥ %.2f, reported only)\n", got, fan, uni, targetFanoutRatio)
	}
	for _, r := range s.Results {
		if r.Verify != nil && r.Scenario == Fanout {
			fmt.Fprintf(w, "%s: %s\n", r.Name, destinationsLine(r.Verify))
		}
		if l := r.Ledger; l != nil {
			fmt.Fprintf(w, "%s: ledger of %s filled events, %.0f inserts/s, %.0f deletes/s\n", r.Name, rowsLabel(l.Filled), l.InsertRate(), l.DeleteRate())
		}
	}
	for _, r := range s.Results {
		if r.Verify != nil {
			for _, f := range r.Verify.Failures {
				fmt.Fprintf(w, "%s: FAIL: %s\n", r.Name, f)
			}
			for _, problem := range slices.Sorted(maps.Keys(r.Verify.Samples)) {
				fmt.Fprintf(w, "%s: %s, e.g. %s\n", r.Name, problem, strings.Join(r.Verify.Samples[problem], " "))
			}
		}
	}
}
