package store_test

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestArrivalsClaimTheirKeysHeadByTheClaimsRule: the claim of the keys of
// deliveries just stored leases each key's head, in created order, only
// while no delivery of the key is in flight, and never a head backing off
// from its failure.
func TestArrivalsClaimTheirKeysHeadByTheClaimsRule(t *testing.T) {
	t.Parallel()
	st, pool := newStore(t)
	rt := orderedRoutes(t)
	arrive := func(keys ...string) []string {
		t.Helper()
		next, err := st.ClaimArrivals(context.Background(), orderDest, keys, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, n := range next {
			if n.Destination != orderDest || n.Lease.IsZero() || len(n.Event.Payload) == 0 {
				t.Fatalf("claimed %+v: want its destination, lease and event", n)
			}
			ids = append(ids, n.Event.ID+"/"+n.Event.OrderKey)
		}
		slices.Sort(ids)
		return ids
	}

	insertKeyed(t, st, rt, keyed{"evt_a1", "arrA", 1}, keyed{"evt_b5", "arrB", 5}, keyed{"evt_b0", "arrB", 0})
	if got := arrive("arrA", "arrB", "arrB", "arrNone"); !slices.Equal(got, []string{"evt_a1/arrA", "evt_b0/arrB"}) {
		t.Fatalf("claimed %v, want each key's head in created order", got)
	}
	// A's head is in flight: a newer and an older arrival wait for it.
	insertKeyed(t, st, rt, keyed{"evt_a2", "arrA", 2}, keyed{"evt_a0", "arrA", 0})
	if got := arrive("arrA"); len(got) != 0 {
		t.Fatalf("claimed %v while evt_a1 of its key is in flight", got)
	}
	if got := claimIDs(t, st, 10); len(got) != 0 {
		t.Fatalf("the sweep's claim took %v while every key is in flight", got)
	}
	// B's head fails and backs off (an hour): an arrival does not retry it early.
	finish(t, st, pool, "evt_b0", false, 15)
	insertKeyed(t, st, rt, keyed{"evt_b6", "arrB", 6})
	if got := arrive("arrB"); len(got) != 0 {
		t.Fatalf("claimed %v while B's head backs off", got)
	}
	// A's delivery is done: the next arrival takes A's head, the older evt_a0.
	finish(t, st, pool, "evt_a1", true, 15)
	insertKeyed(t, st, rt, keyed{"evt_a3", "arrA", 3})
	if got := arrive("arrA"); !slices.Equal(got, []string{"evt_a0/arrA"}) {
		t.Fatalf("claimed %v, want evt_a0, A's head", got)
	}
}
