package bench

import (
	"math"
	"strings"
	"testing"
)

// TestDeliveryRatiosPoolTheRounds: ordered's and unordered's alternating
// rounds are taken together (events over seconds, drains included), each
// round's ratio is listed, and a run not drained leaves the deliveries'
// ratio unknown.
func TestDeliveryRatiosPoolTheRounds(t *testing.T) {
	run := func(scenario string, rps, secs float64, delivered int64, drainMS float64, drained bool) *Result {
		return &Result{Scenario: scenario, Name: scenario, RPS: rps, Seconds: secs,
			Verify: &Verification{Delivered: delivered, DrainMS: drainMS, Drained: drained}}
	}
	s := &Suite{Results: []*Result{
		run(Unordered, 1000, 10, 10000, 0, true),
		run(Ordered, 500, 10, 5000, 0, true), // a slow round: 0.50×
		run(Unordered, 1000, 10, 10000, 0, true),
		run(Ordered, 1000, 9, 9000, 1000, true), // 1.00×, its drain counted
	}}
	d := s.DeliveryRatios()
	if len(d) != 1 || d[0].Scenario != Ordered || d[0].Runs != 2 || d[0].BaseRuns != 2 {
		t.Fatalf("ratios %+v, want ordered over unordered, 2 runs each", d)
	}
	if got, want := d[0].Rate/d[0].BaseRate, 14000.0/20/1000; math.Abs(got-want) > 1e-9 {
		t.Errorf("pooled ratio in deliveries %.4f, want %.4f (14,000 events in 20 s against 1,000/s)", got, want)
	}
	if got, want := d[0].RPS, (5000.0+9000)/19; math.Abs(got-want) > 1e-9 {
		t.Errorf("pooled answers %.2f req/s, want %.2f", got, want)
	}
	if len(d[0].Rounds) != 2 || math.Abs(d[0].Rounds[0]-0.5) > 1e-9 || math.Abs(d[0].Rounds[1]-0.9) > 1e-9 {
		t.Errorf("rounds %v, want 0.50× and 0.90× (9,000 events over 10 s)", d[0].Rounds)
	}
	if line := d[0].String(); !strings.Contains(line, "2 and 2 runs, taken together") || !strings.Contains(line, "each round, in deliveries: 0.50×, 0.90×") {
		t.Errorf("report line %q", line)
	}

	s.Results[1].Verify.Drained = false
	if d := s.DeliveryRatios(); len(d) != 1 || d[0].Rate != 0 || d[0].Rounds[0] != 0 {
		t.Fatalf("with a round not drained: %+v, want no rate in deliveries and that round unknown", d)
	}
	for _, c := range s.Targets() {
		if strings.HasPrefix(c.Goal, "ordered ≥") && c.Measured != "-" {
			t.Errorf("target %q measured %q with a round not drained, want -", c.Goal, c.Measured)
		}
	}
}
