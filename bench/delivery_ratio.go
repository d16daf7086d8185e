package bench

import "fmt"

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
// deliveries per second.
type DeliveryRatio struct {
	Scenario, Base string
	RPS, BaseRPS   float64
	Rate, BaseRate float64 // delivered per second; 0 if unknown
	Target         float64 // 0: none
}

// String is the report's line.
func (d DeliveryRatio) String() string {
	s := fmt.Sprintf("%s over %s: %.2f× in answers (%.0f of %.0f req/s)", d.Scenario, d.Base, d.RPS/d.BaseRPS, d.RPS, d.BaseRPS)
	if d.Rate > 0 && d.BaseRate > 0 {
		s += fmt.Sprintf(", %.2f× in deliveries (%.0f of %.0f events/s, drain included)", d.Rate/d.BaseRate, d.Rate, d.BaseRate)
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
// yardstick, first runs on empty ledgers, where both ran.
func (s *Suite) DeliveryRatios() []DeliveryRatio {
	first := map[string]*Result{}
	for _, r := range s.Results {
		if r.Ledger == nil && first[r.Scenario] == nil {
			first[r.Scenario] = r
		}
	}
	var out []DeliveryRatio
	for _, b := range deliveryBases {
		r, base := first[b.scenario], first[b.base]
		if r == nil || base == nil || base.RPS == 0 {
			continue
		}
		d := DeliveryRatio{Scenario: b.scenario, Base: b.base, RPS: r.RPS, BaseRPS: base.RPS, Target: b.target}
		d.Rate, _ = r.DeliveredRate()
		d.BaseRate, _ = base.DeliveredRate()
		out = append(out, d)
	}
	return out
}
