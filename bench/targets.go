package bench

import "fmt"

// The goals the suite reports against. They are reported, never enforced:
// a slow run does not fail.
const (
	targetReplayRatio = 0.6
	targetStormRatio  = 0.35
	targetUniqueRatio = 0.2
	targetFanoutRatio = 0.7 // of unique, in the same suite
	targetSteadyRatio = 0.8 // of the same scenario on an empty ledger
	targetPruneRatio  = 2   // the pruner's deletes per intake insert
	targetSpreadRatio = 1   // 3 instances over 1
	targetDrainMS     = 2000
	targetP99MS       = 25
	targetHostileP99  = 100
	targetRSSMB       = 200
)

// TargetCheck is one goal and how the suite did.
type TargetCheck struct {
	Goal     string
	Measured string
	State    string // met, not met, or not run
}

func check(goal string, ran, met bool, measured string) TargetCheck {
	state := "not run"
	switch {
	case ran && met:
		state = "met"
	case ran:
		state = "not met"
	}
	return TargetCheck{Goal: goal, Measured: measured, State: state}
}

// Targets checks the suite against the goals. A scenario run twice is
// judged by its first run on an empty ledger (and with every instance,
// for spread); the steady goals by the first runs while the pruner deleted.
func (s *Suite) Targets() []TargetCheck {
	floor := s.FloorRPS()
	first := map[string]*Result{}
	for _, r := range s.Results {
		if first[r.Scenario] == nil && r.Ledger == nil && !(r.Scenario == Spread && len(r.URLs) == 1) {
			first[r.Scenario] = r
		}
	}
	ratioCheck := func(scenario string, want float64) TargetCheck {
		r := first[scenario]
		goal := fmt.Sprintf("%s ≥ %.2f× floor", scenario, want)
		if r == nil || floor == 0 {
			return check(goal, false, false, "-")
		}
		got := r.RPS / floor
		return check(goal, true, got >= want, fmt.Sprintf("%.2f× (%.0f of %.0f req/s)", got, r.RPS, floor))
	}
	out := []TargetCheck{
		ratioCheck(Replay, targetReplayRatio),
		ratioCheck(Storm, targetStormRatio),
		ratioCheck(Unique, targetUniqueRatio),
	}
	goal := fmt.Sprintf("fanout ≥ %.2f× unique", targetFanoutRatio)
	if got, fan, uni, ok := s.FanoutRatio(); ok {
		out = append(out, check(goal, true, got >= targetFanoutRatio, fmt.Sprintf("%.2f× (%.0f of %.0f req/s)", got, fan, uni)))
	} else {
		out = append(out, check(goal, false, false, "-"))
	}
	goal = fmt.Sprintf("ordered ≥ %.2f× unordered in deliveries", targetOrderedRatio)
	out = append(out, check(goal, false, false, "-"))
	for _, d := range s.DeliveryRatios() {
		if d.Scenario == Ordered && d.Rate > 0 && d.BaseRate > 0 {
			got := d.Rate / d.BaseRate
			measured := fmt.Sprintf("%.2f× (%.0f of %.0f events/s", got, d.Rate, d.BaseRate)
			if d.Runs > 1 {
				measured += fmt.Sprintf("; %d rounds", d.Runs)
			}
			out[len(out)-1] = check(goal, true, got >= targetOrderedRatio, measured+")")
		}
	}
	out = append(out, s.steadyTargets(first, floor)...)
	out = append(out, s.spreadTarget(first[Spread]))
	goal = fmt.Sprintf("unique: every event at the sink within %.0f s of the last response", targetDrainMS/1000.0)
	if r := first[Unique]; r != nil && r.Verify != nil {
		v := r.Verify
		measured := fmt.Sprintf("%.0f ms", v.DrainMS)
		if !v.Drained {
			measured = fmt.Sprintf("%d of %d after %.0f ms", v.Delivered, v.Expected, v.DrainMS)
		}
		out = append(out, check(goal, true, v.Drained && v.DrainMS <= targetDrainMS, measured))
	} else {
		out = append(out, check(goal, false, false, "-"))
	}
	for _, r := range s.Results {
		if r.Scenario == Floor {
			continue
		}
		want := targetP99MS
		if r.Scenario == Hostile {
			want = targetHostileP99
			c := r.Counts
			out = append(out, check(r.Name+": every signed delivery answered 200 at once", true,
				c.Status4xx+c.Status5xx+c.Errors == 0 && c.Requests > 0,
				fmt.Sprintf("%d of %d (%d 4xx, %d 5xx, %d errors)", c.Accepted+c.Duplicate+c.OtherOK, c.Requests, c.Status4xx, c.Status5xx, c.Errors)))
		}
		out = append(out, check(fmt.Sprintf("%s: p99 ≤ %d ms", r.Name, want), true,
			r.Latency.P99 <= float64(want), fmt.Sprintf("%.2f ms", r.Latency.P99)))
	}
	peak, pid := s.PeakRSS()
	goal = fmt.Sprintf("receiver RSS ≤ %d MB", targetRSSMB)
	if pid == 0 {
		out = append(out, check(goal, false, false, "-"))
	} else {
		mb := float64(peak) * 1024 / 1e6
		out = append(out, check(goal, true, mb <= targetRSSMB, fmt.Sprintf("%.0f MB peak (VmHWM of pid %d)", mb, pid)))
	}
	return out
}

// FanoutRatio is the first fanout run's throughput over the first unique
// run's (req/s each), on empty ledgers; ok is false unless both ran.
func (s *Suite) FanoutRatio() (ratio, fanout, unique float64, ok bool) {
	var f, u *Result
	for _, r := range s.Results {
		switch {
		case r.Ledger != nil:
		case r.Scenario == Fanout && f == nil:
			f = r
		case r.Scenario == Unique && u == nil:
			u = r
		}
	}
	if f == nil || u == nil || u.RPS == 0 {
		return 0, 0, 0, false
	}
	return f.RPS / u.RPS, f.RPS, u.RPS, true
}

// PeakRSS is the highest VmHWM (KiB) of any receiver, and its pid.
func (s *Suite) PeakRSS() (kb int64, pid int) {
	for _, r := range s.Results {
		for _, m := range r.Memory {
			if m.PeakKB > kb {
				kb, pid = m.PeakKB, m.PID
			}
		}
	}
	return kb, pid
}

// steadyTargets judge unique and storm while the pruner deleted: against
// the same scenario on the empty ledger, and the pruner against the intake.
func (s *Suite) steadyTargets(empty map[string]*Result, floor float64) []TargetCheck {
	var out []TargetCheck
	for _, scenario := range []string{Unique, Storm} {
		r := s.firstSteady(scenario)
		goal := fmt.Sprintf("steady %s (pruning) ≥ %.2f× %s on an empty ledger", scenario, targetSteadyRatio, scenario)
		base := empty[scenario]
		if r == nil || base == nil || base.RPS == 0 {
			out = append(out, check(goal, false, false, "-"))
		} else {
			got := r.RPS / base.RPS
			measured := fmt.Sprintf("%.2f× (%.0f of %.0f req/s; %s× floor)", got, r.RPS, base.RPS, ratio(r.RPS, floor))
			out = append(out, check(goal, true, got >= targetSteadyRatio, measured))
		}
		goal = fmt.Sprintf("steady %s: pruner deletes ≥ %d× intake inserts", scenario, targetPruneRatio)
		if r == nil {
			out = append(out, check(goal, false, false, "-"))
			continue
		}
		w := r.Ledger
		got := 0.0
		if w.InsertRate() > 0 {
			got = w.DeleteRate() / w.InsertRate()
		}
		measured := fmt.Sprintf("%.1f× (%.0f deletes/s, %.0f inserts/s over %.1f s)", got, w.DeleteRate(), w.InsertRate(), w.Seconds)
		if !w.PrunerSeen {
			measured += "; the pruner was not seen deleting before the run"
		}
		out = append(out, check(goal, true, got >= targetPruneRatio, measured))
	}
	return out
}

// spreadTarget judges spread on every instance against spread on one.
func (s *Suite) spreadTarget(all *Result) TargetCheck {
	var one *Result
	for _, r := range s.Results {
		if r.Scenario == Spread && len(r.URLs) == 1 && r.Ledger == nil {
			one = r
			break
		}
	}
	goal := "spread: 3 instances ≥ 1 instance"
	if all != nil {
		goal = fmt.Sprintf("spread: %d instances ≥ 1 instance", len(all.URLs))
	}
	if all == nil || one == nil || one.RPS == 0 {
		return check(goal, false, false, "-")
	}
	got := all.RPS / one.RPS
	return check(goal, true, got >= targetSpreadRatio, fmt.Sprintf("%.2f× (%.0f of %.0f req/s)", got, all.RPS, one.RPS))
}
