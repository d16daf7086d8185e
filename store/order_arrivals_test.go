package store_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/oncehook/oncehook/store"
)

// TestArrivalsGoByTheClaimsRule: keyed deliveries are stored under a
// held lease; ClaimArrivals lets an arrival go when it is its key's head
// and the key is free, leases the key's head in its stead when that is
// another delivery that may go, and releases every other arrival.
func TestArrivalsGoByTheClaimsRule(t *testing.T) {
	t.Parallel()
	st, pool := newStore(t)
	rt := orderedRoutes(t)
	hold := func(evs ...keyed) []store.Arrival {
		t.Helper()
		held, err := holdKeyed(st, rt, evs...)
		if err != nil {
			t.Fatal(err)
		}
		var out []store.Arrival
		for _, h := range held {
			out = append(out, store.Arrival{EventID: h.id, Key: h.key, Lease: h.lease})
		}
		return out
	}
	decide := func(arrivals ...store.Arrival) (keep, next []string) {
		t.Helper()
		keep, n, err := st.ClaimArrivals(context.Background(), orderDest, arrivals, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range n {
			if x.Destination != orderDest || x.Lease.IsZero() || len(x.Event.Payload) == 0 {
				t.Fatalf("leased %+v: want its destination, lease and event", x)
			}
			next = append(next, x.Event.ID+"/"+x.Event.OrderKey)
		}
		slices.Sort(keep)
		slices.Sort(next)
		return keep, next
	}
	leased := func(id string) bool {
		t.Helper()
		var l bool
		if err := pool.QueryRow(context.Background(), `SELECT locked_until IS NOT NULL FROM stripe_webhook_deliveries WHERE event_id = $1`, id).Scan(&l); err != nil {
			t.Fatal(err)
		}
		return l
	}

	// Idle keys: each key's head goes under its own lease; B's newer one is released.
	keep, next := decide(hold(keyed{"evt_a1", "arrA", 1}, keyed{"evt_b5", "arrB", 5}, keyed{"evt_b0", "arrB", 0})...)
	if !slices.Equal(keep, []string{"evt_a1", "evt_b0"}) || len(next) != 0 || leased("evt_b5") {
		t.Fatalf("kept %v, leased %v, evt_b5 leased %v; want each key's head kept and evt_b5 released", keep, next, leased("evt_b5"))
	}
	// evt_a1 is in flight: a newer and an older arrival of A are released.
	keep, next = decide(hold(keyed{"evt_a2", "arrA", 2}, keyed{"evt_a0", "arrA", 0})...)
	if len(keep)+len(next) != 0 || leased("evt_a2") || leased("evt_a0") {
		t.Fatalf("kept %v, leased %v while evt_a1 of their key is in flight", keep, next)
	}
	if got := claimIDs(t, st, 10); len(got) != 0 {
		t.Fatalf("the sweep's claim took %v while every key is in flight", got)
	}
	// B's head fails and backs off (an hour): arrivals do not retry it
	// early (each would spend one of its attempts).
	finish(t, st, pool, "evt_b0", false, 15)
	for _, b := range []keyed{{"evt_b6", "arrB", 6}, {"evt_b7", "arrB", 7}} {
		if keep, next = decide(hold(b)...); len(keep)+len(next) != 0 || leased(b.id) {
			t.Fatalf("kept %v, leased %v while B's head backs off; want %s released", keep, next, b.id)
		}
	}
	// evt_a1 is delivered: the next arrival leases A's head, the older evt_a0, in its stead.
	finish(t, st, pool, "evt_a1", true, 15)
	if keep, next = decide(hold(keyed{"evt_a3", "arrA", 3})...); len(keep) != 0 || !slices.Equal(next, []string{"evt_a0/arrA"}) {
		t.Fatalf("kept %v, leased %v; want evt_a0, A's head, leased", keep, next)
	}

	// Two instances hold arrivals of C at once: the first decided finds
	// the other's hold and releases its own; the second finds C free and
	// leases its head, the first's.
	c1, c2 := hold(keyed{"evt_c1", "arrC", 1}), hold(keyed{"evt_c2", "arrC", 2})
	if keep, next = decide(c1...); len(keep)+len(next) != 0 {
		t.Fatalf("kept %v, leased %v while another instance holds evt_c2", keep, next)
	}
	if keep, next = decide(c2...); len(keep) != 0 || !slices.Equal(next, []string{"evt_c1/arrC"}) {
		t.Fatalf("kept %v, leased %v; want evt_c1, C's head, leased", keep, next)
	}

	// A sweep that finds D held parks D's head behind the hold; the
	// arrival, decided, leases that head at once.
	insertKeyed(t, st, rt, keyed{"evt_d0", "arrD", 0})
	d1 := hold(keyed{"evt_d1", "arrD", 1})
	if got := claimIDs(t, st, 10); len(got) != 0 {
		t.Fatalf("the sweep took %v while evt_d1 is held", got)
	}
	if keep, next = decide(d1...); len(keep) != 0 || !slices.Equal(next, []string{"evt_d0/arrD"}) {
		t.Fatalf("kept %v, leased %v; want evt_d0, D's parked head, leased", keep, next)
	}

	// Two instances hold arrivals of E, and a sweep parks E's head until
	// the later hold's end. Its instance, decided first, finds the other
	// hold live and releases its own, making the head due: the other
	// instance then leases it.
	insertKeyed(t, st, rt, keyed{"evt_e0", "arrE", 0})
	e1 := hold(keyed{"evt_e1", "arrE", 1})
	e2 := hold(keyed{"evt_e2", "arrE", 2})
	if got := claimIDs(t, st, 10); len(got) != 0 {
		t.Fatalf("the sweep took %v while E is held", got)
	}
	if keep, next = decide(e2...); len(keep)+len(next) != 0 {
		t.Fatalf("kept %v, leased %v while evt_e1 is held", keep, next)
	}
	if keep, next = decide(e1...); len(keep) != 0 || !slices.Equal(next, []string{"evt_e0/arrE"}) {
		t.Fatalf("kept %v, leased %v; want evt_e0, E's head, no longer parked behind a hold released", keep, next)
	}
}

// TestTwoHoldersOfAnIdleKeyLetOneGo: two instances store an event each of
// an idle key at once and decide it at once, so that one may look before
// the other's event is committed (the look without a lock of an arrival
// alone on its key) or after. Of each key's two, one goes at most (kept,
// or leased in the other's stead); if none does, both are released and
// due, for a sweep.
func TestTwoHoldersOfAnIdleKeyLetOneGo(t *testing.T) {
	t.Parallel()
	st, pool := newStore(t)
	rt := orderedRoutes(t)
	const keys = 300
	type went struct {
		key  string
		ids  []string
		kept bool // by its own holder, rather than leased in the other's stead
	}
	out := make(chan went, 2*keys)
	errs := make(chan error, 2*keys)
	var start sync.WaitGroup
	start.Add(1)
	var done sync.WaitGroup
	for k := range keys {
		key := fmt.Sprintf("two%d", k)
		for i, sec := range []int{0, 1} {
			done.Add(1)
			go func() {
				defer done.Done()
				start.Wait()
				held, err := holdKeyed(st, rt, keyed{fmt.Sprintf("evt_two%d_%d", k, i), key, sec})
				if err != nil {
					errs <- err
					return
				}
				keep, next, err := st.ClaimArrivals(context.Background(), orderDest,
					[]store.Arrival{{EventID: held[0].id, Key: key, Lease: held[0].lease}}, time.Minute)
				if err != nil {
					errs <- err
					return
				}
				ids := slices.Clone(keep)
				for _, n := range next {
					ids = append(ids, n.Event.ID)
				}
				out <- went{key, ids, len(keep) > 0}
			}()
		}
	}
	start.Done()
	done.Wait()
	close(out)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	going := map[string][]string{}
	kept := 0
	for w := range out {
		going[w.key] = append(going[w.key], w.ids...)
		if w.kept {
			kept++
		}
	}
	newer := 0
	for k := range keys {
		key := fmt.Sprintf("two%d", k)
		g := going[key]
		if len(g) > 1 {
			t.Fatalf("key %s: %v went, want one of its two at most", key, g)
		}
		var live, due int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE locked_until > now()),
				count(*) FILTER (WHERE locked_until IS NULL AND next_attempt_at <= now())
			FROM stripe_webhook_deliveries WHERE destination = $1 AND order_key = $2 AND status = 'pending'`, orderDest, key).Scan(&live, &due); err != nil {
			t.Fatal(err)
		}
		if live != len(g) {
			t.Fatalf("key %s: %d deliveries under a live lease, want the %d that went", key, live, len(g))
		}
		if len(g) == 0 {
			// Both released: the later decision's transaction began before
			// the earlier one released its arrival, so that release was
			// not yet due for it. Both are due, for the next sweep.
			if due != 2 {
				t.Fatalf("key %s: none went and %d of its two are due, want both", key, due)
			}
			continue
		}
		if g[0] == fmt.Sprintf("evt_two%d_1", k) {
			newer++ // it looked before the older was stored
		}
	}
	t.Logf("of %d keys: %d went under their holder's lease, %d leased in the other's stead; the newer went at %d",
		keys, kept, keys-kept, newer)
}

// TestAHeadParkedBehindAFinishedLeaseGoesWithTheNextHold: a sweep parks
// a key's head behind the delivery in flight, until that lease's end;
// the delivery finishes while another instance holds a newer arrival of
// the key, so its result may not hand the head over. The head is made due
// then, and the holder's decision takes it in its arrival's stead, rather
// than leaving the key until the finished lease would have ended.
func TestAHeadParkedBehindAFinishedLeaseGoesWithTheNextHold(t *testing.T) {
	t.Parallel()
	st, pool := newStore(t)
	rt := orderedRoutes(t)
	ctx := context.Background()
	decide := func(id string, sec int) (keep, next []string) {
		t.Helper()
		held, err := holdKeyed(st, rt, keyed{id, "parkK", sec})
		if err != nil {
			t.Fatal(err)
		}
		keep, n, err := st.ClaimArrivals(ctx, orderDest, []store.Arrival{{EventID: id, Key: "parkK", Lease: held[0].lease}}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range n {
			next = append(next, x.Event.ID)
		}
		return keep, next
	}
	if keep, _ := decide("evt_park_d", 0); !slices.Equal(keep, []string{"evt_park_d"}) {
		t.Fatalf("kept %v, want the idle key's first arrival", keep)
	}
	if keep, next := decide("evt_park_h", 1); len(keep)+len(next) != 0 {
		t.Fatalf("kept %v, leased %v while evt_park_d is in flight", keep, next)
	}
	if got := claimIDs(t, st, 10); len(got) != 0 { // parks evt_park_h until evt_park_d's lease ends
		t.Fatalf("the sweep took %v while evt_park_d is in flight", got)
	}
	var parked bool
	if err := pool.QueryRow(ctx, `SELECT next_attempt_at > now() + interval '30 seconds' FROM stripe_webhook_deliveries WHERE event_id = 'evt_park_h'`).Scan(&parked); err != nil || !parked {
		t.Fatalf("evt_park_h parked %v (%v), want it parked behind evt_park_d's lease", parked, err)
	}
	// A newer arrival of the key, held by another instance, not decided yet.
	held, err := holdKeyed(st, rt, keyed{"evt_park_y", "parkK", 2})
	if err != nil {
		t.Fatal(err)
	}
	var lease time.Time
	if err := pool.QueryRow(ctx, `SELECT locked_until FROM stripe_webhook_deliveries WHERE event_id = 'evt_park_d'`).Scan(&lease); err != nil {
		t.Fatal(err)
	}
	applied, err := st.WriteResultsClaimingNext(ctx, []store.Result{{EventID: "evt_park_d", Destination: orderDest, Lease: lease, MaxAttempts: 15, OK: true}},
		store.Backoff{Base: time.Hour, Max: time.Hour}, "test", time.Minute)
	if err != nil || applied.WakeErr != nil || len(applied.Next) != 0 {
		t.Fatalf("writing evt_park_d's result: next %v, %v, %v; want nothing handed over while evt_park_y is held", applied.Next, applied.WakeErr, err)
	}
	keep, n, err := st.ClaimArrivals(ctx, orderDest, []store.Arrival{{EventID: "evt_park_y", Key: "parkK", Lease: held[0].lease}}, time.Minute)
	if err != nil || len(keep) != 0 || len(n) != 1 || n[0].Event.ID != "evt_park_h" {
		t.Fatalf("deciding evt_park_y: kept %v, leased %v, %v; want evt_park_h leased in its stead", keep, n, err)
	}
}
