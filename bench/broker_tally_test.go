package bench

import (
	"context"
	"testing"
)

func TestBrokerTallyCountsTheRunsEvents(t *testing.T) {
	tl := newBrokerTally("r1")
	tl.add([]byte(EventID("r1", 0)), 10)
	tl.add([]byte(EventID("r1", 2000)), 20)
	tl.add([]byte(EventID("r1", 0)), 30)
	tl.add([]byte(EventID("r0", 1)), 40) // another run's: skipped
	tl.add([]byte("not-an-id"), 50)
	sums, err := tl.Summaries(context.Background(), "r1")
	if err != nil {
		t.Fatal(err)
	}
	s := sums[""]
	if s.Deliveries != 3 || s.Distinct != 2 || s.Mismatched != 1 || s.LastNew != 20 || s.Last != 30 {
		t.Fatalf("summary %+v, want 3 deliveries, 2 distinct, 1 mismatched, last new 20, last 30", s)
	}
	c, _ := tl.Counts(context.Background(), "r1", "")
	if len(c) <= 2000 || c[0] != 2 || c[2000] != 1 || c[1] != 0 {
		t.Fatalf("counts: len %d, [0]=%d [1]=%d [2000]=%d; want 2, 0, 1", len(c), c[0], c[1], c[2000])
	}
	if _, err := tl.Summaries(context.Background(), "r2"); err == nil {
		t.Fatal("summaries of another run: no error")
	}
}

func TestAtLeastOnceReportsDuplicatesWithoutFailing(t *testing.T) {
	for _, atLeastOnce := range []bool{false, true} {
		v := &Verification{AtLeastOnce: atLeastOnce, Destinations: []DestVerification{{Expected: 2, Delivered: 2, OverDelivered: 1, ExtraDeliveries: 1}}}
		v.fail(0)
		if v.OK() != atLeastOnce {
			t.Errorf("at least once %v: OK %v, failures %v", atLeastOnce, v.OK(), v.Failures)
		}
	}
	v := &Verification{AtLeastOnce: true, Destinations: []DestVerification{{Expected: 2, Delivered: 1, Missing: 1}}}
	v.fail(0)
	if v.OK() {
		t.Error("at least once: a missing event did not fail")
	}
}
