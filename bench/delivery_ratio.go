package bench

import (
	"fmt"
	"strings"
)

// targetOrderedRatio is ordered's delivered throughput over unordered's,
// reported only.
const targetOrderedRatio = 0.8

// DeliveredRate is a run's events delivered per second, end to end: its
// verified deliveries over the measured phase and the drain after it.
// ok is false without a drained verification.
func (r *Result) DeliveredRate() (rate float64, ok bool) {
	v := r.Verify
	if v == nil || !v.Drained || v.Delivered == 0 {
		return 0, false
	}
	secs := r.Seconds + v.DrainMS/1000
	if secs <= 0 {
		return 0, false
	}
	return float64(v.Delivered) / secs, true
}

// DeliveryRatio compares a scenario with its yardstick, by answers and by
// deliveries per second, over all their runs on empty ledgers taken
// together (the bench alternates them in rounds).
type DeliveryRatio struct {
	Scenario, Base string
	Runs, BaseRuns int
	RPS, BaseRPS   float64
	Rate, BaseRate float64 // delivered per second; 0 if unknown
	// Rounds are the ratios in deliveries of the runs paired in the
	// order they ran, when there are several; 0 where one is unknown.
	Rounds []float64
	Target float64 // 0: none
}

// String is the report's line.
func (d DeliveryRatio) String() string {
	s := fmt.Sprintf("%s over %s", d.Scenario, d.Base)
	if d.Runs > 1 || d.BaseRuns > 1 {
		s += fmt.Sprintf(" (%d and %d runs, taken together)", d.Runs, d.BaseRuns)
	}
	s += fmt.Sprintf(": %.2f× in answers (%.0f of %.0f req/s)", d.RPS/d.BaseRPS, d.RPS, d.BaseRPS)
	if d.Rate > 0 && d.BaseRate > 0 {
		s += fmt.Sprintf(", %.2f× in deliveries (%.0f of %.0f events/s, drain included)", d.Rate/d.BaseRate, d.Rate, d.BaseRate)
	}
	if len(d.Rounds) > 1 {
		each := make([]string, len(d.Rounds))
		for i, r := range d.Rounds {
			each[i] = "-"
			if r > 0 {
				each[i] = fmt.Sprintf("%.2f×", r)
			}
		}
		s += "; each round, in deliveries: " + strings.Join(each, ", ")
	}
	if d.Target > 0 {
		s += fmt.Sprintf("; the target, reported only, is ≥ %.2f× in deliveries", d.Target)
	}
	return s + "."
}

// deliveryBases are the scenarios compared with a yardstick.
var deliveryBases = []struct {
	scenario, base string
	target         float64
}{
	{Ordered, Unordered, targetOrderedRatio},
	{NATS, Unique, 0},
	{RabbitMQ, Unique, 0},
}

// DeliveryRatios compares each scenario of deliveryBases with its
// yardstick, over their runs on empty ledgers, where both ran.
func (s *Suite) DeliveryRatios() []DeliveryRatio {
	runs := map[string][]*Result{}
	for _, r := range s.Results {
		if r.Ledger == nil {
			runs[r.Scenario] = append(runs[r.Scenario], r)
		}
	}
	var out []DeliveryRatio
	for _, b := range deliveryBases {
		rs, bs := runs[b.scenario], runs[b.base]
		d := DeliveryRatio{Scenario: b.scenario, Base: b.base, Runs: len(rs), BaseRuns: len(bs), Target: b.target}
		d.RPS, d.Rate = pooled(rs)
		d.BaseRPS, d.BaseRate = pooled(bs)
		if len(rs) == 0 || d.BaseRPS == 0 {
			continue
		}
		if len(rs) > 1 && len(rs) == len(bs) {
			for i := range rs {
				r, _ := rs[i].DeliveredRate()
				base, _ := bs[i].DeliveredRate()
				ratio := 0.0
				if r > 0 && base > 0 {
					ratio = r / base
				}
				d.Rounds = append(d.Rounds, ratio)
			}
		}
		out = append(out, d)
	}
	return out
}

// pooled is runs taken together: answers per second over their measured
// phases, and events delivered per second over their phases and drains
// (0 unless every run was drained and verified).
func pooled(runs []*Result) (rps, rate float64) {
	var answered, secs, delivered, deliverSecs float64
	drained := len(runs) > 0
	for _, r := range runs {
		answered += r.RPS * r.Seconds
		secs += r.Seconds
		if _, ok := r.DeliveredRate(); !ok {
			drained = false
			continue
		}
		delivered += float64(r.Verify.Delivered)
		deliverSecs += r.Seconds + r.Verify.DrainMS/1000
	}
	if secs > 0 {
		rps = answered / secs
	}
	if drained && deliverSecs > 0 {
		rate = delivered / deliverSecs
	}
	return rps, rate
}
