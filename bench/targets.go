package bench

import "fmt"

// The goals the suite reports against. They are reported, never enforced:
// a slow run does not fail.
const (
	targetReplayRatio = 0.5
	targetStormRatio  = 0.35
	targetUniqueRatio = 0.2
	targetFanoutRatio = 0.7 // of unique, in the same suite
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
// judged by its first run.
func (s *Suite) Targets() []TargetCheck {
	floor := s.FloorRPS()
	first := map[string]*Result{}
	for _, r := range s.Results {
		if first[r.Scenario] == nil {
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
// run's (req/s each); ok is false unless both ran.
func (s *Suite) FanoutRatio() (ratio, fanout, unique float64, ok bool) {
	var f, u *Result
	for _, r := range s.Results {
		switch {
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
