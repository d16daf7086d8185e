package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/store"
)

// The claim rule of order keys: one delivery of a key in flight at a
// time, across claimers; only the key's head, in (created, event id)
// order; a leased or failing head holds back its own key only.
//
// Each test names its keys apart (takeA, failA...): the keys' advisory
// locks are the database's, not the schema's, and tests running side by
// side would otherwise skip each other's keys.

const orderDest = "ordered"

func orderedRoutes(t *testing.T) *route.Table {
	t.Helper()
	p, err := event.ParseKeyPath("data.object.id")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := route.NewTable([]route.Destination{{Name: orderDest, OrderKey: p}})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// keyed is an event of key (none when ""), created at base + sec seconds.
type keyed struct {
	id, key string
	sec     int
}

var base = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func insertKeyed(t testing.TB, st *store.Store, rt *route.Table, evs ...keyed) {
	t.Helper()
	if err := storeKeyed(st, rt, evs...); err != nil {
		t.Fatal(err)
	}
}

// storeKeyed stores evs and releases the keyed deliveries' held lease, as
// ClaimArrivals does when they may not go: due, under no lease, for the
// claims the tests make.
func storeKeyed(st *store.Store, rt *route.Table, evs ...keyed) error {
	inserted, err := holdKeyed(st, rt, evs...)
	if err != nil {
		return err
	}
	var held []store.Next
	for _, in := range inserted {
		if in.key != "" {
			held = append(held, store.Next{Destination: orderDest, Claimed: store.Claimed{Event: &event.Event{ID: in.id}, Lease: in.lease}})
		}
	}
	return st.GiveBack(context.Background(), held)
}

// heldKeyed is a keyed event stored, and its deliveries' lease.
type heldKeyed struct {
	keyed
	lease time.Time
}

// holdKeyed stores evs; their deliveries are leased to the caller for an
// hour, and held where keyed.
func holdKeyed(st *store.Store, rt *route.Table, evs ...keyed) ([]heldKeyed, error) {
	slices.SortFunc(evs, func(a, b keyed) int { return cmpString(a.id, b.id) })
	var b store.EventBatch
	for _, e := range evs {
		body := fmt.Sprintf(`{"id":%q,"object":"event","data":{"object":{"id":%q}}}`, e.id, e.key)
		if e.key == "" {
			body = fmt.Sprintf(`{"id":%q,"object":"event","data":{"object":{}}}`, e.id)
		}
		b.Add(&event.Event{ID: e.id, Type: "customer.updated", Created: base.Add(time.Duration(e.sec) * time.Second), Payload: []byte(body)}, rt)
	}
	inserted, err := st.InsertEvents(context.Background(), &b, time.Hour)
	if err != nil {
		return nil, err
	}
	out := make([]heldKeyed, len(inserted))
	for i, in := range inserted {
		j := slices.IndexFunc(evs, func(e keyed) bool { return e.id == in.ID })
		out[i] = heldKeyed{keyed: evs[j], lease: in.Lease}
	}
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func claimIDs(t testing.TB, st *store.Store, limit int) []string {
	t.Helper()
	c, err := st.Claim(context.Background(), store.ClaimParams{Destination: orderDest, Limit: limit, RoomBytes: 1 << 30, Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(c))
	for i, x := range c {
		ids[i] = x.Event.ID + "/" + x.Event.OrderKey
	}
	slices.Sort(ids)
	return ids
}

// finish writes a result for a claimed delivery, read back from its row.
func finish(t testing.TB, st *store.Store, pool *pgxpool.Pool, id string, ok bool, maxAttempts int) {
	t.Helper()
	var lease time.Time
	if err := pool.QueryRow(context.Background(), `SELECT locked_until FROM stripe_webhook_deliveries WHERE event_id = $1 AND destination = $2`,
		id, orderDest).Scan(&lease); err != nil {
		t.Fatalf("reading the lease of %s: %v", id, err)
	}
	r := store.Result{EventID: id, Destination: orderDest, Lease: lease, MaxAttempts: maxAttempts, OK: ok}
	if !ok {
		r.Err = "sink down"
	}
	if _, err := st.WriteResults(context.Background(), []store.Result{r}, store.Backoff{Base: time.Hour, Max: time.Hour}, "test"); err != nil {
		t.Fatal(err)
	}
}

func TestOrderKeyIsStoredAndKeyedDeliveriesAreHeld(t *testing.T) {
	t.Parallel()
	st, pool := newStore(t)
	if _, err := holdKeyed(st, orderedRoutes(t), keyed{"evt_k", "cus_1", 5}, keyed{"evt_u", "", 6}); err != nil {
		t.Fatal(err)
	}
	var key *string
	var created *time.Time
	var leased bool
	if err := pool.QueryRow(context.Background(), `SELECT order_key, order_created, locked_until IS NOT NULL FROM stripe_webhook_deliveries WHERE event_id = 'evt_k'`).
		Scan(&key, &created, &leased); err != nil || key == nil || *key != "cus_1" || created == nil || !created.Equal(base.Add(5*time.Second)) || !leased {
		t.Fatalf("keyed delivery: key %v, created %v, leased %v, %v; want cus_1, its created, held under the intake's lease", key, created, leased, err)
	}
	if err := pool.QueryRow(context.Background(), `SELECT order_key, locked_until IS NOT NULL FROM stripe_webhook_deliveries WHERE event_id = 'evt_u'`).
		Scan(&key, &leased); err != nil || key != nil || !leased {
		t.Fatalf("unkeyed delivery: key %v, leased %v, %v; want none, leased to the intake", key, leased, err)
	}
}

func TestClaimTakesEachKeysHeadOnlyInCreatedOrder(t *testing.T) {
	t.Parallel()
	st, pool := newStore(t)
	rt := orderedRoutes(t)
	// Stored out of created order; evt_a2 and evt_a3 share a second: the
	// event id breaks the tie.
	insertKeyed(t, st, rt, keyed{"evt_a3", "takeA", 3}, keyed{"evt_a1", "takeA", 1}, keyed{"evt_b2", "takeB", 2})
	insertKeyed(t, st, rt, keyed{"evt_a2", "takeA", 3}, keyed{"evt_b1", "takeB", 1}, keyed{"evt_a0", "takeA", 0})
	var order []string
	for range 10 {
		got := claimIDs(t, st, 100)
		if len(got) == 0 {
			break
		}
		if again := claimIDs(t, st, 100); len(again) != 0 {
			t.Fatalf("claimed %v while %v are in flight", again, got)
		}
		for _, g := range got {
			order = append(order, g)
			finish(t, st, pool, g[:strings.IndexByte(g, '/')], true, 15)
		}
	}
	var a, b []string
	for _, o := range order {
		if o[len(o)-1] == 'A' {
			a = append(a, o)
		} else {
			b = append(b, o)
		}
	}
	if !slices.Equal(a, []string{"evt_a0/takeA", "evt_a1/takeA", "evt_a2/takeA", "evt_a3/takeA"}) || !slices.Equal(b, []string{"evt_b1/takeB", "evt_b2/takeB"}) {
		t.Fatalf("delivered A %v, B %v; want each key in created order, then event id", a, b)
	}
}

func TestLeasedHeadHoldsBackAnOlderEventAndAReplay(t *testing.T) {
	t.Parallel()
	st, pool := newStore(t)
	rt := orderedRoutes(t)
	insertKeyed(t, st, rt, keyed{"evt_old", "leaseA", 1})
	finish(t, st, pool, claimIDs(t, st, 10)[0][:7], false, 1) // dead at once
	insertKeyed(t, st, rt, keyed{"evt_mid", "leaseA", 5})
	if got := claimIDs(t, st, 10); !slices.Equal(got, []string{"evt_mid/leaseA"}) {
		t.Fatalf("claimed %v, want evt_mid: a dead letter lets its key go on", got)
	}
	// In flight: an older event arrives, and the dead one is replayed.
	insertKeyed(t, st, rt, keyed{"evt_older", "leaseA", 3})
	if _, err := st.ReplayIDs(context.Background(), []string{"evt_old"}, store.ReplayIDsOptions{Destination: orderDest, OnlyDead: true, Existing: true}); err != nil {
		t.Fatal(err)
	}
	if got := claimIDs(t, st, 10); len(got) != 0 {
		t.Fatalf("claimed %v while evt_mid of the key is in flight", got)
	}
	finish(t, st, pool, "evt_mid", true, 15)
	for _, want := range []string{"evt_old/leaseA", "evt_older/leaseA"} {
		if got := claimIDs(t, st, 10); !slices.Equal(got, []string{want}) {
			t.Fatalf("claimed %v, want %s, the key's head", got, want)
		}
		finish(t, st, pool, want[:strings.IndexByte(want, '/')], true, 15)
	}
}

func TestFailingHeadHoldsBackOnlyItsKey(t *testing.T) {
	t.Parallel()
	st, pool := newStore(t)
	rt := orderedRoutes(t)
	var stuck []keyed
	for i := range 60 {
		stuck = append(stuck, keyed{fmt.Sprintf("evt_a%02d", i), "failA", i})
	}
	insertKeyed(t, st, rt, stuck...)
	if got := claimIDs(t, st, 5); !slices.Equal(got, []string{"evt_a00/failA"}) {
		t.Fatalf("claimed %v, want A's head alone", got)
	}
	finish(t, st, pool, "evt_a00", false, 15) // backs off for an hour
	insertKeyed(t, st, rt, keyed{"evt_b0", "failB", 100}, keyed{"evt_u", "", 101})
	if _, err := pool.Exec(context.Background(), `UPDATE stripe_webhook_deliveries SET locked_until = NULL, next_attempt_at = now() WHERE order_key IS NULL`); err != nil {
		t.Fatal(err)
	}
	// A's 59 held-back deliveries come first in the due order; claims of
	// 5 look at 20 at a time and park them, so B is reached.
	var got []string
	for range 5 {
		got = append(got, claimIDs(t, st, 5)...)
		if slices.Contains(got, "evt_b0/failB") {
			break
		}
	}
	if !slices.Contains(got, "evt_b0/failB") || !slices.Contains(got, "evt_u/") {
		t.Fatalf("claimed %v; want B's head and the unkeyed event despite A's backlog", got)
	}
	for _, g := range got {
		if g[len(g)-1] == 'A' {
			t.Fatalf("claimed %s behind A's failing head", g)
		}
	}
	var parked int
	// Parked: behind the head's lease (those the first claim looked at),
	// then behind its retry.
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM stripe_webhook_deliveries WHERE order_key = 'failA' AND next_attempt_at > now() + interval '30 seconds'`).Scan(&parked); err != nil || parked != 60 {
		t.Fatalf("%d of A's deliveries are parked, %v; want all 60", parked, err)
	}
}

func TestClaimSkipsAKeyAnotherClaimHolds(t *testing.T) {
	t.Parallel()
	st, pool := newStore(t)
	insertKeyed(t, st, orderedRoutes(t), keyed{"evt_a", "skipA", 1}, keyed{"evt_b", "skipB", 1})
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(1869310329, hashtext($1))`, orderDest+"\nskipA"); err != nil {
		t.Fatal(err)
	}
	if got := claimIDs(t, st, 10); !slices.Equal(got, []string{"evt_b/skipB"}) {
		t.Fatalf("claimed %v while another claim holds key A; want B only", got)
	}
	_ = tx.Rollback(ctx)
	if got := claimIDs(t, st, 10); !slices.Equal(got, []string{"evt_a/skipA"}) {
		t.Fatalf("claimed %v once A is free, want evt_a", got)
	}
}

// TestConcurrentClaimersNeverLeaseTwoOfOneKey runs claimers on several
// pools at once, over interleaved keys, with older events arriving while
// they claim (half of them also taking, with their results, the next
// delivery of each key they finished), and a watcher that reads, in one snapshot at a time, whether
// any key has two leased deliveries. Every delivery is made, and each key's
// deliveries that were stored before the claims began go in created order.
func TestConcurrentClaimersNeverLeaseTwoOfOneKey(t *testing.T) {
	t.Parallel()
	st, pool := newStore(t)
	rt := orderedRoutes(t)
	const keys, perKey = 20, 15
	var first []keyed
	for k := range keys {
		for i := range perKey {
			first = append(first, keyed{fmt.Sprintf("evt_%02d_%02d", k, i), fmt.Sprintf("K%02d", k), 1000 + 10*i})
		}
	}
	rand.Shuffle(len(first), func(i, j int) { first[i], first[j] = first[j], first[i] })
	for i := 0; i < len(first); i += 50 {
		insertKeyed(t, st, rt, first[i:min(i+50, len(first))]...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var violation atomic.Value
	var undecidedMu sync.Mutex
	undecided := map[string]bool{}
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for ctx.Err() == nil {
			var key *string
			// A late event's lease is only held until ClaimArrivals
			// decides it: not a delivery in flight. undecidedMu keeps the
			// set still while the query runs.
			undecidedMu.Lock()
			var skip []string
			for id := range undecided {
				skip = append(skip, id)
			}
			err := pool.QueryRow(ctx, `SELECT min(order_key) FROM (SELECT order_key FROM stripe_webhook_deliveries
				WHERE destination = $1 AND status = 'pending' AND locked_until > now() AND order_key IS NOT NULL
					AND event_id <> ALL($2::text[])
				GROUP BY order_key HAVING count(*) > 1) x`, orderDest, skip).Scan(&key)
			undecidedMu.Unlock()
			if err == nil && key != nil {
				violation.Store(*key)
				return
			}
		}
	}()
	late := make(chan keyed, keys)
	for k := range keys { // older than every first event of their key
		late <- keyed{fmt.Sprintf("evt_%02d_late", k), fmt.Sprintf("K%02d", k), 5}
	}
	close(late)
	var mu sync.Mutex
	delivered := map[string][]string{}
	total := 0
	var wg sync.WaitGroup
	for c := range 6 {
		cst := store.New(testenv.AnotherPool(t, pool))
		wg.Add(1)
		go func() {
			defer wg.Done()
			var carry []store.Claimed
			for ctx.Err() == nil {
				if c == 0 {
					if l, ok := <-late; ok {
						// Held, then decided, as the instance that stored it does.
						undecidedMu.Lock()
						undecided[l.id] = true
						undecidedMu.Unlock()
						held, err := holdKeyed(cst, rt, l)
						if err != nil {
							t.Errorf("storing %s: %v", l.id, err)
							return
						}
						keep, next, err := cst.ClaimArrivals(ctx, orderDest, []store.Arrival{{EventID: l.id, Key: l.key, Lease: held[0].lease}}, time.Minute)
						if err != nil {
							t.Errorf("claiming the arrival %s: %v", l.id, err)
							return
						}
						undecidedMu.Lock()
						delete(undecided, l.id)
						undecidedMu.Unlock()
						for _, id := range keep {
							// Now in flight: no other delivery of its key may be.
							var others int
							if err := pool.QueryRow(ctx, `SELECT count(*) FROM stripe_webhook_deliveries WHERE destination = $1 AND order_key = $2
								AND status = 'pending' AND locked_until > now() AND event_id <> $3`, orderDest, l.key, id).Scan(&others); err != nil {
								t.Errorf("reading the leases of %s: %v", l.key, err)
								return
							}
							if others > 0 {
								violation.Store(l.key)
							}
							carry = append(carry, store.Claimed{Event: &event.Event{ID: id, OrderKey: l.key}, Lease: held[0].lease})
						}
						for _, n := range next {
							carry = append(carry, n.Claimed)
						}
					}
				}
				got, err := cst.Claim(ctx, store.ClaimParams{Destination: orderDest, Limit: 7, RoomBytes: 1 << 30, Lease: time.Minute})
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("claim: %v", err)
					}
					return
				}
				// The odd claimers go on with the next deliveries their
				// results leased to them, as an instance does.
				got = append(carry, got...)
				carry = nil
				var results []store.Result
				for _, g := range got {
					results = append(results, store.Result{EventID: g.Event.ID, Destination: orderDest, Lease: g.Lease, MaxAttempts: 15, OK: true})
				}
				if len(results) > 0 {
					mu.Lock()
					for _, g := range got {
						delivered[g.Event.OrderKey] = append(delivered[g.Event.OrderKey], g.Event.ID)
						total++
					}
					done := total == keys*(perKey+1)
					mu.Unlock()
					write := cst.WriteResults
					if c%2 == 1 {
						write = func(ctx context.Context, r []store.Result, b store.Backoff, instance string) (store.Applied, error) {
							return cst.WriteResultsClaimingNext(ctx, r, b, instance, time.Minute)
						}
					}
					applied, err := write(ctx, results, store.Backoff{Base: time.Hour, Max: time.Hour}, "test")
					if err != nil {
						t.Errorf("results: %v", err)
						return
					}
					if applied.WakeErr != nil && ctx.Err() == nil {
						t.Errorf("next deliveries: %v", applied.WakeErr)
						return
					}
					for _, n := range applied.Next {
						carry = append(carry, n.Claimed)
					}
					if done {
						cancel()
					}
				}
			}
		}()
	}
	wg.Wait()
	cancel()
	<-watchDone
	if v := violation.Load(); v != nil {
		t.Fatalf("key %s had two deliveries leased at once", v)
	}
	if total != keys*(perKey+1) {
		t.Fatalf("delivered %d, want %d", total, keys*(perKey+1))
	}
	for key, ids := range delivered {
		var firsts []string
		for _, id := range ids {
			if id[len(id)-4:] != "late" {
				firsts = append(firsts, id)
			}
		}
		if !slices.IsSorted(firsts) || len(firsts) != perKey {
			t.Errorf("key %s went %v; want its %d events in created order", key, ids, perKey)
		}
	}
}

// TestResultsHandTheKeysNextDeliveryToTheirWriter: a result that finishes
// a key's delivery (delivered, or dead) leases the key's next head to its
// writer, in created order; no claim takes another delivery of the key
// meanwhile; a failed result hands nothing over; a delivery given back is
// due for any claim.
func TestResultsHandTheKeysNextDeliveryToTheirWriter(t *testing.T) {
	t.Parallel()
	st, pool := newStore(t)
	rt := orderedRoutes(t)
	insertKeyed(t, st, rt, keyed{"evt_a3", "handA", 3}, keyed{"evt_a1", "handA", 1}, keyed{"evt_a2", "handA", 1}, keyed{"evt_b1", "handB", 1})
	if got := claimIDs(t, st, 10); !slices.Equal(got, []string{"evt_a1/handA", "evt_b1/handB"}) {
		t.Fatalf("claimed %v, want each key's head", got)
	}
	write := func(id string, ok bool, maxAttempts int) []string {
		t.Helper()
		var lease time.Time
		if err := pool.QueryRow(context.Background(), `SELECT locked_until FROM stripe_webhook_deliveries WHERE event_id = $1`, id).Scan(&lease); err != nil {
			t.Fatal(err)
		}
		r := store.Result{EventID: id, Destination: orderDest, Lease: lease, MaxAttempts: maxAttempts, OK: ok}
		if !ok {
			r.Err = "sink down"
		}
		applied, err := st.WriteResultsClaimingNext(context.Background(), []store.Result{r}, store.Backoff{Base: time.Hour, Max: time.Hour}, "test", time.Minute)
		if err != nil || applied.WakeErr != nil {
			t.Fatalf("writing %s: %v, %v", id, err, applied.WakeErr)
		}
		var next []string
		for _, n := range applied.Next {
			if n.Destination != orderDest || n.Lease.IsZero() || len(n.Event.Payload) == 0 {
				t.Fatalf("next delivery %+v: want its destination, lease and event", n)
			}
			next = append(next, n.Event.ID+"/"+n.Event.OrderKey)
		}
		return next
	}
	if next := write("evt_a1", true, 15); !slices.Equal(next, []string{"evt_a2/handA"}) {
		t.Fatalf("delivering evt_a1 handed over %v, want evt_a2 (created ties go by id)", next)
	}
	if got := claimIDs(t, st, 10); len(got) != 0 {
		t.Fatalf("claimed %v while evt_a2 is handed over", got)
	}
	// An older event arrives while evt_a2 is in flight: it is A's head
	// now, but it must wait. evt_a1's result, written again (stale, as
	// from an instance whose lease had ended), hands nothing over.
	insertKeyed(t, st, rt, keyed{"evt_a0", "handA", 0})
	stale := store.Result{EventID: "evt_a1", Destination: orderDest, Lease: time.Now(), MaxAttempts: 15, OK: true}
	applied, err := st.WriteResultsClaimingNext(context.Background(), []store.Result{stale}, store.Backoff{Base: time.Hour, Max: time.Hour}, "test", time.Minute)
	if err != nil || applied.WakeErr != nil || len(applied.Next) != 0 {
		t.Fatalf("a stale result of evt_a1 handed over %v (%v, %v) while evt_a2 is in flight", applied.Next, err, applied.WakeErr)
	}
	if got := claimIDs(t, st, 10); len(got) != 0 {
		t.Fatalf("claimed %v while evt_a2 is in flight", got)
	}
	if next := write("evt_a2", false, 15); len(next) != 0 {
		t.Fatalf("a failed evt_a2 handed over %v; a failure hands nothing over", next)
	}
	if next := write("evt_b1", false, 1); len(next) != 0 {
		t.Fatalf("B's dead head handed over %v, with nothing behind it", next)
	}
	// The claim that found evt_a2 in flight parked evt_a0 until evt_a2's
	// lease ends; a failure wakes nothing. Its park ends now.
	if _, err := pool.Exec(context.Background(), `UPDATE stripe_webhook_deliveries SET next_attempt_at = now() WHERE event_id = 'evt_a0'`); err != nil {
		t.Fatal(err)
	}
	if got := claimIDs(t, st, 10); !slices.Equal(got, []string{"evt_a0/handA"}) {
		t.Fatalf("claimed %v, want evt_a0, A's head", got)
	}
	// evt_a0 goes dead: the key goes on with evt_a2 (backing off: one
	// early retry), then evt_a3.
	if next := write("evt_a0", false, 1); !slices.Equal(next, []string{"evt_a2/handA"}) {
		t.Fatalf("evt_a0 dead handed over %v, want evt_a2: a dead letter lets its key go on", next)
	}
	if next := write("evt_a2", true, 15); !slices.Equal(next, []string{"evt_a3/handA"}) {
		t.Fatalf("delivering evt_a2 handed over %v, want evt_a3", next)
	}
	var lease time.Time
	if err := pool.QueryRow(context.Background(), `SELECT locked_until FROM stripe_webhook_deliveries WHERE event_id = 'evt_a3'`).Scan(&lease); err != nil {
		t.Fatal(err)
	}
	given := store.Next{Destination: orderDest, Claimed: store.Claimed{Event: &event.Event{ID: "evt_a3"}, Lease: lease}}
	if err := st.GiveBack(context.Background(), []store.Next{given}); err != nil {
		t.Fatal(err)
	}
	if got := claimIDs(t, st, 10); !slices.Equal(got, []string{"evt_a3/handA"}) {
		t.Fatalf("claimed %v after evt_a3 was given back, want it", got)
	}
}
