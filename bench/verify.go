package bench

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"
)

// sampleSize bounds the ids kept per kind of problem.
const sampleSize = 5

// Verification is the end-to-end check of one run: what the receiver
// answered, against what reached the sink. The sink counts are summed over
// the run's destinations (one, /, but for fanout); Destinations has each.
type Verification struct {
	// Expected counts the deliveries owed: each valid event answered 200,
	// once at each destination.
	Expected  int64 `json:"expected"`
	Delivered int64 `json:"delivered"`
	Missing   int64 `json:"missing"`
	// OverDelivered counts expected events delivered more than once to a
	// destination; ExtraDeliveries the deliveries past the first.
	OverDelivered   int64 `json:"over_delivered"`
	ExtraDeliveries int64 `json:"extra_deliveries"`
	// Unexpected counts valid events at a destination that were never
	// answered 200.
	Unexpected int64 `json:"unexpected"`
	// Bad requests (mixed): sent, at a destination, answered 2xx.
	BadSent     int64 `json:"bad_sent"`
	BadAtSink   int64 `json:"bad_at_sink"`
	BadAccepted int64 `json:"bad_accepted"`
	// AcceptedTwice counts events answered "accepted" more than once.
	AcceptedTwice int64 `json:"accepted_twice"`
	// NeverAccepted counts events answered 200 but never "accepted"
	// although no attempt of theirs failed.
	NeverAccepted int64 `json:"never_accepted"`
	// Rejected counts valid events answered 4xx; Unanswered those whose
	// retries after 5xx or transport errors gave up.
	Rejected   int64 `json:"rejected"`
	Unanswered int64 `json:"unanswered"`
	// Mismatched and Overflow are the sink's (see RunSummary).
	Mismatched uint64 `json:"mismatched"`
	Overflow   uint64 `json:"overflow"`
	// Stray counts the run's deliveries to sink paths that are none of its
	// destinations.
	Stray int64 `json:"stray"`
	// OutOfOrder counts, for Ordered, events whose first delivery arrived
	// before that of an earlier event (in created order) of their object.
	OutOfOrder int64 `json:"out_of_order,omitempty"`
	// AtLeastOnce: events delivered more than once are reported, not a
	// failure (RabbitMQ, whose publisher confirms can be lost).
	AtLeastOnce bool `json:"at_least_once,omitempty"`
	// DrainMS is from the last answer to the last event's first delivery;
	// Drained says every expected event arrived within the drain timeout.
	DrainMS float64 `json:"drain_ms"`
	Drained bool    `json:"drained"`
	// SettleMS is how long the check waited after the drain for late
	// duplicates.
	SettleMS float64 `json:"settle_ms"`
	// Destinations is the check of each destination.
	Destinations []DestVerification `json:"destinations,omitempty"`
	// Samples holds a few event ids for each problem.
	Samples  map[string][]string `json:"samples,omitempty"`
	Failures []string            `json:"failures,omitempty"`
}

// DestVerification is what reached one destination (see Verification).
type DestVerification struct {
	Dest            string `json:"dest"` // the sink path without its slash: "" for /
	Expected        int64  `json:"expected"`
	Delivered       int64  `json:"delivered"`
	Missing         int64  `json:"missing"`
	OverDelivered   int64  `json:"over_delivered"`
	ExtraDeliveries int64  `json:"extra_deliveries"`
	Unexpected      int64  `json:"unexpected"`
	BadAtSink       int64  `json:"bad_at_sink"`
	// DrainMS is from the last answer to its last event's first delivery.
	DrainMS float64 `json:"drain_ms"`
}

// OK reports whether the run kept every guarantee checked.
func (v *Verification) OK() bool { return len(v.Failures) == 0 }

// OK reports whether every expected event reached the destination exactly
// once, and nothing else did.
func (d *DestVerification) OK() bool {
	return d.Missing+d.OverDelivered+d.Unexpected+d.BadAtSink == 0
}

// destLabel names destination d in failures, and destKey in samples.
func destLabel(d string) string {
	if d == "" {
		return "the sink"
	}
	return "destination /" + d
}

func destKey(problem, d string) string {
	if d == "" {
		return problem
	}
	return problem + " at /" + d
}

// verifier checks one run's events 0..events-1 against the sink.
type verifier struct {
	sink   deliveries
	gen    *Generator
	track  *tracker
	badCut uint64
	dests  []string // each expected event must reach each once
	// ordered: per object (KeyOf), the first deliveries must arrive in
	// created order, which is the order of n (Ordered).
	ordered bool
	// atLeastOnce: duplicates are no failure (Verification.AtLeastOnce).
	atLeastOnce bool
}

// expected reports whether event n must reach the sink.
func (v *verifier) expected(n uint64) bool {
	return kindOf(n, v.gen.cfg.Seed, v.badCut) == Valid && v.track.at(n).ok.Load() > 0
}

// waitDelivered polls the sink until every expected event of 0..events-1
// has arrived at every destination, or timeout. It returns the summaries
// taken then, by destination, and whether all arrived.
func (v *verifier) waitDelivered(ctx context.Context, events uint64, timeout time.Duration) (map[string]RunSummary, bool, error) {
	var want uint64
	for n := range events {
		if v.expected(n) {
			want++
		}
	}
	run := v.gen.Run()
	deadline := time.Now().Add(timeout)
	for {
		sums, err := v.sink.Summaries(ctx, run)
		if err != nil {
			return sums, false, err
		}
		all := true
		for _, d := range v.dests {
			all = all && sums[d].Distinct >= want
		}
		for _, d := range v.dests {
			if !all {
				break
			}
			counts, err := v.sink.Counts(ctx, run, d)
			if err != nil {
				return sums, false, err
			}
			all = v.allArrived(counts, events)
		}
		if all {
			// Summarize again: the last event may have come after sums.
			sums, err = v.sink.Summaries(ctx, run)
			return sums, err == nil, err
		}
		if time.Now().After(deadline) {
			return sums, false, nil
		}
		select {
		case <-ctx.Done():
			return sums, false, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (v *verifier) allArrived(counts []byte, events uint64) bool {
	for n := range events {
		if v.expected(n) && (n >= uint64(len(counts)) || counts[n] == 0) {
			return false
		}
	}
	return true
}

// verify waits for the drain, then settle more for late duplicates, and
// compares. lastAnswer is when the run's last answer came.
func (v *verifier) verify(ctx context.Context, events uint64, lastAnswer time.Time, drainTimeout, settle time.Duration) (*Verification, error) {
	drainSums, drained, err := v.waitDelivered(ctx, events, drainTimeout)
	if err != nil {
		return nil, err
	}
	res := &Verification{Drained: drained, AtLeastOnce: v.atLeastOnce, SettleMS: float64(settle.Milliseconds()), Samples: map[string][]string{}}
	drainMS := func(d string) float64 {
		return max(0, float64(drainSums[d].LastNew-lastAnswer.UnixNano())/1e6)
	}
	res.DrainMS = float64(drainTimeout.Milliseconds())
	if drained {
		res.DrainMS = 0
		for _, d := range v.dests {
			res.DrainMS = max(res.DrainMS, drainMS(d))
		}
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(settle):
	}
	run := v.gen.Run()
	sums, err := v.sink.Summaries(ctx, run)
	if err != nil {
		return nil, err
	}
	counts := map[string][]byte{}
	for _, d := range v.dests {
		if counts[d], err = v.sink.Counts(ctx, run, d); err != nil {
			return nil, err
		}
	}
	for _, d := range slices.Sorted(maps.Keys(sums)) {
		s := sums[d]
		res.Mismatched += s.Mismatched
		res.Overflow += s.Overflow
		if !slices.Contains(v.dests, d) {
			res.Stray += int64(s.Deliveries)
			res.Samples["stray"] = append(res.Samples["stray"], "/"+d)
		}
	}
	v.compare(res, counts, events)
	if v.ordered {
		for _, d := range v.dests {
			first, err := v.sink.Order(ctx, run, d)
			if err != nil {
				return nil, err
			}
			v.checkOrder(res, first, events)
		}
	}
	for i := range res.Destinations {
		res.Destinations[i].DrainMS = drainMS(res.Destinations[i].Dest)
	}
	res.fail(drainTimeout)
	return res, nil
}

func (res *Verification) sample(problem string, run string, n uint64) {
	if len(res.Samples[problem]) < sampleSize {
		res.Samples[problem] = append(res.Samples[problem], EventID(run, n))
	}
}

// compare checks the receiver's answers once per event, and what reached
// each destination against them.
func (v *verifier) compare(res *Verification, counts map[string][]byte, events uint64) {
	run := v.gen.Run()
	for n := range events {
		st := v.track.at(n)
		ok := st.ok.Load() > 0
		if kindOf(n, v.gen.cfg.Seed, v.badCut) != Valid {
			res.BadSent++
			if ok {
				res.BadAccepted++
				res.sample("bad_accepted", run, n)
			}
			continue
		}
		switch acc := st.accepted.Load(); {
		case acc > 1:
			res.AcceptedTwice++
			res.sample("accepted_twice", run, n)
		case acc == 0 && ok && st.retried.Load() == 0:
			res.NeverAccepted++
			res.sample("never_accepted", run, n)
		}
		switch {
		case ok:
		case st.rejected.Load() > 0:
			res.Rejected++
			res.sample("rejected", run, n)
		default:
			res.Unanswered++
			res.sample("unanswered", run, n)
		}
	}
	for _, d := range v.dests {
		dv := v.compareDest(res, d, counts[d], events)
		res.Expected += dv.Expected
		res.Delivered += dv.Delivered
		res.Missing += dv.Missing
		res.OverDelivered += dv.OverDelivered
		res.ExtraDeliveries += dv.ExtraDeliveries
		res.Unexpected += dv.Unexpected
		res.BadAtSink += dv.BadAtSink
		res.Destinations = append(res.Destinations, dv)
	}
}

// compareDest checks destination d's counts.
func (v *verifier) compareDest(res *Verification, d string, counts []byte, events uint64) DestVerification {
	run := v.gen.Run()
	dv := DestVerification{Dest: d}
	for n := range max(events, uint64(len(counts))) {
		var got uint8
		if n < uint64(len(counts)) {
			got = counts[n]
		}
		sent := n < events
		valid := sent && kindOf(n, v.gen.cfg.Seed, v.badCut) == Valid
		switch {
		case !sent || (valid && v.track.at(n).ok.Load() == 0):
			if got > 0 {
				dv.Unexpected++
				res.sample(destKey("unexpected", d), run, n)
			}
		case !valid:
			if got > 0 {
				dv.BadAtSink++
				res.sample(destKey("bad_at_sink", d), run, n)
			}
		case got == 0:
			dv.Expected++
			dv.Missing++
			res.sample(destKey("missing", d), run, n)
		default:
			dv.Expected++
			dv.Delivered++
			if got > 1 {
				dv.OverDelivered++
				dv.ExtraDeliveries += int64(got) - 1
				res.sample(destKey("over_delivered", d), run, n)
			}
		}
	}
	return dv
}

// fail lists the broken guarantees.
func (res *Verification) fail(drainTimeout time.Duration) {
	add := func(n int64, format string, args ...any) {
		if n > 0 {
			res.Failures = append(res.Failures, fmt.Sprintf("%d %s", n, fmt.Sprintf(format, args...)))
		}
	}
	for _, d := range res.Destinations {
		at := destLabel(d.Dest)
		add(d.Missing, "events answered 200 never reached %s (waited %s)", at, drainTimeout)
		if !res.AtLeastOnce {
			add(d.OverDelivered, "events reached %s more than once (%d extra deliveries)", at, d.ExtraDeliveries)
		}
		add(d.Unexpected, "events reached %s without ever being answered 200", at)
		add(d.BadAtSink, "bad requests reached %s", at)
	}
	add(res.BadAccepted, "bad requests were answered 2xx")
	add(res.AcceptedTwice, "events were answered \"accepted\" more than once")
	add(res.NeverAccepted, "events got 200 but never \"accepted\", with no failed attempt")
	add(res.Rejected, "valid events were answered 4xx")
	add(res.Unanswered, "valid events never got a 200 (retries after 5xx or transport errors gave up)")
	add(int64(res.Mismatched), "deliveries had a body without their Idempotency-Key id or no Stripe-Event-Type")
	add(int64(res.Overflow), "deliveries overflowed the sink's counters")
	add(res.Stray, "deliveries reached sink paths that are no destination of the run")
	add(res.OutOfOrder, "events reached their destination before an earlier event (in created order) of their object")
}

// checkOrder counts the events whose first arrival (rank in first) came
// before that of an earlier delivered event of their object.
func (v *verifier) checkOrder(res *Verification, first []uint32, events uint64) {
	keys := uint64(v.gen.cfg.Keys)
	if keys == 0 {
		return
	}
	last := make([]uint32, keys) // per object: the latest rank so far
	for n := range min(events, uint64(len(first))) {
		r := first[n]
		if r == 0 || !v.expected(n) {
			continue
		}
		k := KeyOf(n, int(keys))
		if r < last[k] {
			res.OutOfOrder++
			res.sample("out_of_order", v.gen.Run(), n)
			continue
		}
		last[k] = r
	}
}
