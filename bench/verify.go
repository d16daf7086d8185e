package bench

import (
	"context"
	"fmt"
	"time"
)

// sampleSize bounds the ids kept per kind of problem.
const sampleSize = 5

// Verification is the end-to-end check of one run: what the receiver
// answered, against what reached the sink.
type Verification struct {
	// Expected counts the valid events answered 200: each must reach the
	// sink exactly once.
	Expected  int64 `json:"expected"`
	Delivered int64 `json:"delivered"`
	Missing   int64 `json:"missing"`
	// OverDelivered counts expected events delivered more than once;
	// ExtraDeliveries the deliveries past the first.
	OverDelivered   int64 `json:"over_delivered"`
	ExtraDeliveries int64 `json:"extra_deliveries"`
	// Unexpected counts valid events at the sink that were never answered 200.
	Unexpected int64 `json:"unexpected"`
	// Bad requests (mixed): sent, at the sink, answered 2xx.
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
	// DrainMS is from the last answer to the last event's first delivery;
	// Drained says every expected event arrived within the drain timeout.
	DrainMS float64 `json:"drain_ms"`
	Drained bool    `json:"drained"`
	// SettleMS is how long the check waited after the drain for late
	// duplicates.
	SettleMS float64 `json:"settle_ms"`
	// Samples holds a few event ids for each problem.
	Samples  map[string][]string `json:"samples,omitempty"`
	Failures []string            `json:"failures,omitempty"`
}

// OK reports whether the run kept every guarantee checked.
func (v *Verification) OK() bool { return len(v.Failures) == 0 }

// verifier checks one run's events 0..events-1 against the sink.
type verifier struct {
	sink   *SinkClient
	gen    *Generator
	track  *tracker
	badCut uint64
}

// expected reports whether event n must reach the sink.
func (v *verifier) expected(n uint64) bool {
	return kindOf(n, v.gen.cfg.Seed, v.badCut) == Valid && v.track.at(n).ok.Load() > 0
}

// waitDelivered polls the sink until every expected event of 0..events-1
// has arrived, or timeout. It returns the summary taken then, and whether
// all arrived.
func (v *verifier) waitDelivered(ctx context.Context, events uint64, timeout time.Duration) (RunSummary, bool, error) {
	var want uint64
	for n := range events {
		if v.expected(n) {
			want++
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		sum, err := v.sink.Summary(ctx, v.gen.Run())
		if err != nil {
			return sum, false, err
		}
		if sum.Distinct >= want {
			counts, err := v.sink.Counts(ctx, v.gen.Run())
			if err != nil {
				return sum, false, err
			}
			if v.allArrived(counts, events) {
				// Summarize again: the last event may have come after sum.
				sum, err = v.sink.Summary(ctx, v.gen.Run())
				return sum, err == nil, err
			}
		}
		if time.Now().After(deadline) {
			return sum, false, nil
		}
		select {
		case <-ctx.Done():
			return sum, false, ctx.Err()
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
	sum, drained, err := v.waitDelivered(ctx, events, drainTimeout)
	if err != nil {
		return nil, err
	}
	res := &Verification{Drained: drained, SettleMS: float64(settle.Milliseconds()), Samples: map[string][]string{}}
	if drained {
		res.DrainMS = max(0, float64(sum.LastNew-lastAnswer.UnixNano())/1e6)
	} else {
		res.DrainMS = float64(drainTimeout.Milliseconds())
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(settle):
	}
	sum, err = v.sink.Summary(ctx, v.gen.Run())
	if err != nil {
		return nil, err
	}
	counts, err := v.sink.Counts(ctx, v.gen.Run())
	if err != nil {
		return nil, err
	}
	res.Mismatched, res.Overflow = sum.Mismatched, sum.Overflow
	v.compare(res, counts, events)
	res.fail(drainTimeout)
	return res, nil
}

func (res *Verification) sample(problem string, run string, n uint64) {
	if len(res.Samples[problem]) < sampleSize {
		res.Samples[problem] = append(res.Samples[problem], EventID(run, n))
	}
}

func (v *verifier) compare(res *Verification, counts []byte, events uint64) {
	run := v.gen.Run()
	for n := range max(events, uint64(len(counts))) {
		var got uint8
		if n < uint64(len(counts)) {
			got = counts[n]
		}
		if n >= events {
			if got > 0 {
				res.Unexpected++
				res.sample("unexpected", run, n)
			}
			continue
		}
		st := v.track.at(n)
		ok := st.ok.Load() > 0
		if kindOf(n, v.gen.cfg.Seed, v.badCut) != Valid {
			res.BadSent++
			if got > 0 {
				res.BadAtSink++
				res.sample("bad_at_sink", run, n)
			}
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
		case !ok:
			if st.rejected.Load() > 0 {
				res.Rejected++
				res.sample("rejected", run, n)
			} else {
				res.Unanswered++
				res.sample("unanswered", run, n)
			}
			if got > 0 {
				res.Unexpected++
				res.sample("unexpected", run, n)
			}
		case got == 0:
			res.Expected++
			res.Missing++
			res.sample("missing", run, n)
		default:
			res.Expected++
			res.Delivered++
			if got > 1 {
				res.OverDelivered++
				res.ExtraDeliveries += int64(got) - 1
				res.sample("over_delivered", run, n)
			}
		}
	}
}

// fail lists the broken guarantees.
func (res *Verification) fail(drainTimeout time.Duration) {
	add := func(n int64, format string, args ...any) {
		if n > 0 {
			res.Failures = append(res.Failures, fmt.Sprintf("%d %s", n, fmt.Sprintf(format, args...)))
		}
	}
	add(res.Missing, "events answered 200 never reached the sink (waited %s)", drainTimeout)
	add(res.OverDelivered, "events reached the sink more than once (%d extra deliveries)", res.ExtraDeliveries)
	add(res.Unexpected, "events reached the sink without ever being answered 200")
	add(res.BadAtSink, "bad requests reached the sink")
	add(res.BadAccepted, "bad requests were answered 2xx")
	add(res.AcceptedTwice, "events were answered \"accepted\" more than once")
	add(res.NeverAccepted, "events got 200 but never \"accepted\", with no failed attempt")
	add(res.Rejected, "valid events were answered 4xx")
	add(res.Unanswered, "valid events never got a 200 (retries after 5xx or transport errors gave up)")
	add(int64(res.Mismatched), "deliveries had a body without their Idempotency-Key id or no Stripe-Event-Type")
	add(int64(res.Overflow), "deliveries overflowed the sink's counters")
}
