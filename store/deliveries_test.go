package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/store"
)

// The store's suite: every transition of the delivery state machine
// (deliveries.go), leases and stale results, and claims, results and the
// pruner racing each other, against real Postgres. Every caller relies on
// what it shows.

func newStore(t *testing.T) (*store.Store, *pgxpool.Pool) {
	t.Helper()
	pool := testenv.Postgres(t)
	return store.New(pool), pool
}

func routes(t *testing.T, names ...string) *route.Table {
	t.Helper()
	var dests []route.Destination
	for _, n := range names {
		dests = append(dests, route.Destination{Name: n})
	}
	rt, err := route.NewTable(dests)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// insert stores events with ids, routed to rt, leased for lease.
func insert(t *testing.T, st *store.Store, rt *route.Table, lease time.Duration, ids ...string) []store.Inserted {
	t.Helper()
	var b store.EventBatch
	for _, id := range ids {
		b.Add(&event.Event{ID: id, Type: "invoice.paid", Created: time.Now(), Payload: []byte(`{"id":"` + id + `"}`)}, rt)
	}
	in, err := st.InsertEvents(context.Background(), &b, lease)
	if err != nil {
		t.Fatal(err)
	}
	return append([]store.Inserted(nil), in...)
}

type row struct {
	status   store.Status
	attempts int
	token    *time.Time
	due      time.Time
	deadAt   *time.Time
	lastErr  *string
}

func deliveryRow(t *testing.T, pool *pgxpool.Pool, id, dest string) row {
	t.Helper()
	var r row
	err := pool.QueryRow(context.Background(), `SELECT status, attempts, locked_until, next_attempt_at, dead_at, last_error
		FROM stripe_webhook_deliveries WHERE event_id = $1 AND destination = $2`, id, dest).
		Scan(&r.status, &r.attempts, &r.token, &r.due, &r.deadAt, &r.lastErr)
	if err != nil {
		t.Fatalf("reading delivery %s/%s: %v", id, dest, err)
	}
	return r
}

func claimAll(t *testing.T, st *store.Store, dest string, lease time.Duration) []store.Claimed {
	t.Helper()
	c, err := st.Claim(context.Background(), store.ClaimParams{Destination: dest, Limit: 1000, RoomBytes: 1 << 30, Lease: lease})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestInsertStoresEachEventOnceWithLeasedDeliveries(t *testing.T) {
	t.Parallel()
	st, pool := newStore(t)
	rt := routes(t, "billing", "crm")
	in := insert(t, st, rt, time.Hour, "evt_b", "evt_a")
	if len(in) != 2 || in[0].ID != "evt_a" || in[1].ID != "evt_b" {
		t.Fatalf("inserted %+v, want evt_a and evt_b in id order", in)
	}
	for _, dest := range []string{"billing", "crm"} {
		r := deliveryRow(t, pool, "evt_a", dest)
		if r.status != store.StatusPending || r.attempts != 0 || r.token == nil || !r.token.Equal(in[0].Lease) {
			t.Errorf("%s: %+v, want pending, 0 attempts, token %v", dest, r, in[0].Lease)
		}
		if d := time.Until(*r.token); d < 50*time.Minute {
			t.Errorf("%s: lease ends in %s, want about an hour", dest, d)
		}
	}
	if again := insert(t, st, rt, time.Hour, "evt_a", "evt_c"); len(again) != 1 || again[0].ID != "evt_c" {
		t.Fatalf("second insert returned %+v, want only evt_c", again)
	}
	have, err := st.StoredEvents(context.Background(), []string{"evt_a", "evt_c", "evt_missing"})
	if err != nil || !have["evt_a"] || !have["evt_c"] || have["evt_missing"] {
		t.Fatalf("StoredEvents = %v, %v", have, err)
	}
}

func TestClaimTakesOnlyDueRowsWhoseLeaseEnded(t *testing.T) {
	t.Parallel()
	st, pool := newStore(t)
	rt := routes(t, "billing")
	insert(t, st, rt, time.Hour, "evt_held")
	insert(t, st, rt, 0, "evt_free")
	got := claimAll(t, st, "billing", time.Minute)
	if len(got) != 1 || got[0].Event.ID != "evt_free" || string(got[0].Event.Payload) != `{"id":"evt_free"}` {
		t.Fatalf("claimed %+v, want evt_free only, with its payload", got)
	}
	r := deliveryRow(t, pool, "evt_free", "billing")
	if r.token == nil || !r.token.Equal(got[0].Lease) || !r.due.Equal(got[0].Lease) {
		t.Fatalf("after the claim: %+v, want token and next attempt at %v", r, got[0].Lease)
	}
	if again := claimAll(t, st, "billing", time.Minute); len(again) != 0 {
		t.Fatalf("a leased row was claimed again: %+v", again)
	}
	if other := claimAll(t, st, "crm", time.Minute); len(other) != 0 {
		t.Fatalf("another destination's claim took %+v", other)
	}
}

func TestClaimKeepsToItsRoomButAlwaysTakesOne(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t)
	rt := routes(t, "billing")
	insert(t, st, rt, 0, "evt_1", "evt_2", "evt_3")
	got, err := st.Claim(context.Background(), store.ClaimParams{Destination: "billing", Limit: 10, RoomBytes: 1, Lease: time.Minute})
	if err != nil || len(got) != 1 {
		t.Fatalf("claimed %d rows (%v) with room for 1 byte, want exactly one", len(got), err)
	}
}

func TestResultsMoveDeliveriesAlongTheStateMachine(t *testing.T) {
	t.Parallel()
	st, pool := newStore(t)
	ctx := context.Background()
	rt := routes(t, "billing")
	in := insert(t, st, rt, time.Hour, "evt_ok", "evt_retry", "evt_dead")
	token := map[string]time.Time{}
	for _, i := range in {
		token[i.ID] = i.Lease
	}
	backoff := store.Backoff{Base: time.Minute, Max: time.Hour}
	applied, err := st.WriteResults(ctx, []store.Result{
		{EventID: "evt_ok", Destination: "billing", Lease: token["evt_ok"], MaxAttempts: 3, OK: true},
		{EventID: "evt_retry", Destination: "billing", Lease: token["evt_retry"], MaxAttempts: 3, Err: "503 from the sink"},
		{EventID: "evt_dead", Destination: "billing", Lease: token["evt_dead"], MaxAttempts: 1, Err: "410 gone", EventType: "invoice.paid"},
	}, backoff, "instance-a")
	if err != nil {
		t.Fatal(err)
	}
	if applied.Delivered["billing"] != 1 || applied.Retry["billing"] != 1 || applied.Dead["billing"] != 1 {
		t.Fatalf("applied %+v, want one of each", applied)
	}
	// The failed rows come back with what the caller logs.
	failed := map[string]store.Failure{}
	for _, f := range applied.Failed {
		failed[f.EventID] = f
	}
	if f := failed["evt_dead"]; len(failed) != 2 || !f.Dead || f.Attempts != 1 || f.Destination != "billing" || f.EventType != "invoice.paid" || f.Err != "410 gone" {
		t.Errorf("failed %+v, want evt_retry and evt_dead (dead after 1 attempt, invoice.paid, 410 gone)", applied.Failed)
	}
	if f := failed["evt_retry"]; f.Dead || f.Attempts != 1 || f.NextAttempt.IsZero() {
		t.Errorf("retry %+v, want 1 attempt, not dead, a next attempt", f)
	}
	if r := deliveryRow(t, pool, "evt_ok", "billing"); r.status != store.StatusDelivered || r.attempts != 1 || r.token != nil {
		t.Errorf("delivered: %+v", r)
	}
	r := deliveryRow(t, pool, "evt_retry", "billing")
	if r.status != store.StatusPending || r.attempts != 1 || r.token != nil || r.lastErr == nil || *r.lastErr != "503 from the sink" {
		t.Errorf("retry: %+v", r)
	}
	// Base × 2^0, less up to half of it at random.
	if wait := time.Until(r.due); wait < 25*time.Second || wait > time.Minute {
		t.Errorf("retry: next attempt in %s, want between 30s and 1m", wait)
	}
	if r := deliveryRow(t, pool, "evt_dead", "billing"); r.status != store.StatusDead || r.attempts != 1 || r.deadAt == nil {
		t.Errorf("dead: %+v", r)
	}
	var history int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM stripe_webhook_delivery_attempts WHERE instance = 'instance-a'`).Scan(&history); err != nil || history != 3 {
		t.Errorf("history holds %d attempts (%v), want 3", history, err)
	}
	// A finished delivery takes no further result, whatever token it carries.
	applied, err = st.WriteResults(ctx, []store.Result{
		{EventID: "evt_ok", Destination: "billing", Lease: token["evt_ok"], MaxAttempts: 3, Err: "late failure"},
		{EventID: "evt_dead", Destination: "billing", Lease: token["evt_dead"], MaxAttempts: 1, OK: true},
	}, backoff, "instance-a")
	if err != nil || len(applied.Delivered)+len(applied.Retry)+len(applied.Dead) != 0 {
		t.Fatalf("results on finished rows applied: %+v, %v", applied, err)
	}
	if r := deliveryRow(t, pool, "evt_ok", "billing"); r.status != store.StatusDelivered {
		t.Errorf("a late failure reopened a delivered row: %+v", r)
	}
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	t.Parallel()
	st, pool := newStore(t)
	ctx := context.Background()
	rt := routes(t, "billing")
	insert(t, st, rt, time.Hour, "evt_x")
	if _, err := pool.Exec(ctx, `UPDATE stripe_webhook_deliveries SET attempts = 500, locked_until = now() - interval '1 second', next_attempt_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	c := claimAll(t, st, "billing", time.Minute)
	if len(c) != 1 {
		t.Fatalf("claimed %d", len(c))
	}
	_, err := st.WriteResults(ctx, []store.Result{{EventID: "evt_x", Destination: "billing", Lease: c[0].Lease, MaxAttempts: 1000, Err: "x"}},
		store.Backoff{Base: time.Second, Max: 10 * time.Minute}, "i")
	if err != nil {
		t.Fatal(err)
	}
	r := deliveryRow(t, pool, "evt_x", "billing")
	if wait := time.Until(r.due); wait < 4*time.Minute || wait > 10*time.Minute {
		t.Fatalf("after 500 attempts the next is in %s, want at most Max (10m) and at least half of it", wait)
	}
}

// A lease that ran out is taken over; the first holder's result is then
// stale and changes nothing, while the new holder's applies.
func TestAResultAfterATakeoverIsStale(t *testing.T) {
	t.Parallel()
	st, pool := newStore(t)
	ctx := context.Background()
	rt := routes(t, "billing")
	first := insert(t, st, rt, 0, "evt_taken")[0].Lease
	// The insert's lease ended at once: another instance claims the row.
	c := claimAll(t, st, "billing", time.Hour)
	if len(c) != 1 || c[0].Lease.Equal(first) {
		t.Fatalf("takeover claim: %+v", c)
	}
	backoff := store.Backoff{Base: time.Second, Max: time.Minute}
	applied, err := st.WriteResults(ctx, []store.Result{{EventID: "evt_taken", Destination: "billing", Lease: first, MaxAttempts: 1, Err: "old holder"}}, backoff, "old")
	if err != nil || len(applied.Dead)+len(applied.Retry)+len(applied.Delivered) != 0 {
		t.Fatalf("the old holder's result applied: %+v, %v", applied, err)
	}
	if r := deliveryRow(t, pool, "evt_taken", "billing"); r.status != store.StatusPending || r.attempts != 0 || !r.token.Equal(c[0].Lease) {
		t.Fatalf("after a stale result: %+v", r)
	}
	applied, err = st.WriteResults(ctx, []store.Result{{EventID: "evt_taken", Destination: "billing", Lease: c[0].Lease, MaxAttempts: 1, OK: true}}, backoff, "new")
	if err != nil || applied.Delivered["billing"] != 1 {
		t.Fatalf("the new holder's result: %+v, %v", applied, err)
	}
}

// Instances sweeping side by side never claim one row twice, and together
// they claim every due row.
func TestConcurrentClaimsNeverShareARow(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t)
	rt := routes(t, "billing")
	const n = 2000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("evt_%05d", i)
	}
	for i := 0; i < n; i += 500 {
		insert(t, st, rt, 0, ids[i:i+500]...)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := st.Claim(context.Background(), store.ClaimParams{Destination: "billing", Limit: 37, RoomBytes: 1 << 20, Lease: time.Hour})
				if err != nil {
					t.Error(err)
					return
				}
				if len(c) == 0 {
					return
				}
				mu.Lock()
				for _, x := range c {
					seen[x.Event.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("claimed %d distinct rows, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Fatalf("%s claimed %d times", id, k)
		}
	}
}

// age makes every event (and its deliveries) look received ago.
func age(t *testing.T, pool *pgxpool.Pool, ago time.Duration, ids ...string) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `UPDATE stripe_webhook_events SET received_at = now() - $2::bigint * interval '1 millisecond'
		WHERE event_id = ANY($1)`, ids, ago.Milliseconds())
	if err != nil {
		t.Fatal(err)
	}
}

func pruneAll(t *testing.T, st *store.Store, p store.PruneParams) int64 {
	t.Helper()
	var total int64
	for {
		res, err := st.PruneBatch(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		total += res.Deleted
		if res.Done {
			return total
		}
		p.After = res.Next
	}
}

func TestPruneDeletesOnlyFinishedOldEvents(t *testing.T) {
	t.Parallel()
	st, pool := newStore(t)
	ctx := context.Background()
	rt := routes(t, "billing")
	ids := []string{"evt_delivered", "evt_pending", "evt_dead_recent", "evt_dead_old", "evt_new"}
	in := insert(t, st, rt, time.Hour, ids...)
	token := map[string]time.Time{}
	for _, i := range in {
		token[i.ID] = i.Lease
	}
	_, err := st.WriteResults(ctx, []store.Result{
		{EventID: "evt_delivered", Destination: "billing", Lease: token["evt_delivered"], OK: true, MaxAttempts: 1},
		{EventID: "evt_dead_recent", Destination: "billing", Lease: token["evt_dead_recent"], Err: "x", MaxAttempts: 1},
		{EventID: "evt_dead_old", Destination: "billing", Lease: token["evt_dead_old"], Err: "x", MaxAttempts: 1},
		{EventID: "evt_new", Destination: "billing", Lease: token["evt_new"], OK: true, MaxAttempts: 1},
	}, store.Backoff{Base: time.Second, Max: time.Second}, "i")
	if err != nil {
		t.Fatal(err)
	}
	age(t, pool, 48*time.Hour, "evt_delivered", "evt_pending", "evt_dead_recent", "evt_dead_old")
	if _, err := pool.Exec(ctx, `UPDATE stripe_webhook_deliveries SET dead_at = now() - interval '5 days' WHERE event_id = 'evt_dead_old'`); err != nil {
		t.Fatal(err)
	}
	deleted := pruneAll(t, st, store.PruneParams{Retention: 24 * time.Hour, DeadRetention: 72 * time.Hour, BatchSize: 2})
	if deleted != 2 {
		t.Errorf("deleted %d events, want 2 (evt_delivered, evt_dead_old)", deleted)
	}
	have, err := st.StoredEvents(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{"evt_delivered": false, "evt_dead_old": false, "evt_pending": true, "evt_dead_recent": true, "evt_new": true} {
		if have[id] != want {
			t.Errorf("%s stored = %v, want %v", id, have[id], want)
		}
	}
}

// The pruner and the sweepers and result writers work at once on one
// ledger: an event is deleted only once every delivery of it is finished,
// and a claim or a result never fails because of the pruner.
func TestPruneRacingClaimsAndResults(t *testing.T) {
	t.Parallel()
	st, pool := newStore(t)
	ctx := context.Background()
	rt := routes(t, "billing")
	const n = 600
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("evt_race_%04d", i)
	}
	for i := 0; i < n; i += 200 {
		insert(t, st, rt, 0, ids[i:i+200]...)
	}
	age(t, pool, 48*time.Hour, ids...)
	var mu sync.Mutex
	delivered := map[string]int{}
	var pruner, sweepers sync.WaitGroup
	stop := make(chan struct{})
	pruner.Add(1)
	go func() { // the pruner, pass after pass
		defer pruner.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := st.PruneBatch(ctx, store.PruneParams{Retention: time.Hour, DeadRetention: time.Hour, BatchSize: 50}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 3 {
		sweepers.Add(1)
		go func() { // a sweeper and its result writer, until nothing is due
			defer sweepers.Done()
			for {
				c, err := st.Claim(ctx, store.ClaimParams{Destination: "billing", Limit: 25, RoomBytes: 1 << 20, Lease: time.Hour})
				if err != nil {
					t.Error(err)
					return
				}
				if len(c) == 0 {
					return
				}
				var rs []store.Result
				for _, x := range c {
					rs = append(rs, store.Result{EventID: x.Event.ID, Destination: "billing", Lease: x.Lease, OK: true, MaxAttempts: 5})
				}
				applied, err := st.WriteResults(ctx, rs, store.Backoff{Base: time.Second, Max: time.Second}, "i")
				if err != nil {
					t.Error(err)
					return
				}
				if applied.Delivered["billing"] != len(rs) {
					t.Errorf("applied %d of %d results", applied.Delivered["billing"], len(rs))
				}
				mu.Lock()
				for _, x := range c {
					delivered[x.Event.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	sweepers.Wait()
	close(stop)
	pruner.Wait()
	if len(delivered) != n {
		t.Fatalf("delivered %d events, want %d: the pruner took pending ones", len(delivered), n)
	}
	// Every event was claimed and delivered exactly once (the results all
	// applied), and whatever is left is prunable now.
	pruneAll(t, st, store.PruneParams{Retention: time.Hour, DeadRetention: time.Hour, BatchSize: 100})
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM stripe_webhook_events`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d events left after the last pass (%v), want 0", left, err)
	}
}

// Replays, claims with their results, and the pruner race on one ledger of
// old, delivered events. A replay that returned puts the delivery back to
// pending, so its event must survive the pruner until it is delivered
// again: per event, replays and deliveries alternate, and an event
// replayed once more than it was delivered is still there, pending.
func TestReplayClaimAndPruneRacing(t *testing.T) {
	t.Parallel()
	st, pool := newStore(t)
	ctx := context.Background()
	rt := routes(t, "billing")
	const n = 400
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("evt_rcp_%04d", i)
	}
	backoff := store.Backoff{Base: time.Second, Max: time.Second}
	for i := 0; i < n; i += 100 {
		var rs []store.Result
		for _, in := range insert(t, st, rt, time.Hour, ids[i:i+100]...) {
			rs = append(rs, store.Result{EventID: in.ID, Destination: "billing", Lease: in.Lease, OK: true, MaxAttempts: 5})
		}
		if _, err := st.WriteResults(ctx, rs, backoff, "i"); err != nil {
			t.Fatal(err)
		}
	}
	age(t, pool, 48*time.Hour, ids...)

	var mu sync.Mutex
	replays, deliveries := map[string]int{}, map[string]int{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	running := func(f func() bool) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if !f() {
					return
				}
			}
		}()
	}
	next := 0
	running(func() bool { // the replayer, round the ids again and again
		chunk := ids[next : next+20]
		next = (next + 20) % n
		got, err := st.ReplayIDs(ctx, chunk, store.ReplayIDsOptions{Destination: "billing", Existing: true})
		if err != nil {
			t.Error(err)
			return false
		}
		mu.Lock()
		for _, id := range got {
			replays[id]++
		}
		mu.Unlock()
		return true
	})
	for range 2 {
		running(func() bool { // a sweeper and its result writer
			c, err := st.Claim(ctx, store.ClaimParams{Destination: "billing", Limit: 15, RoomBytes: 1 << 20, Lease: time.Hour})
			if err != nil {
				t.Error(err)
				return false
			}
			var rs []store.Result
			for _, x := range c {
				rs = append(rs, store.Result{EventID: x.Event.ID, Destination: "billing", Lease: x.Lease, OK: true, MaxAttempts: 5})
			}
			applied, err := st.WriteResults(ctx, rs, backoff, "i")
			if err != nil {
				t.Error(err)
				return false
			}
			if applied.Delivered["billing"] != len(rs) {
				t.Errorf("applied %d of %d results of fresh claims", applied.Delivered["billing"], len(rs))
			}
			mu.Lock()
			for _, x := range c {
				deliveries[x.Event.ID]++
			}
			mu.Unlock()
			return true
		})
	}
	// The pruner joins once replays are under way, so that it races
	// them rather than emptying the ledger first.
	eventually.Require(t, time.Minute, "the replayer to replay 40 deliveries", func() bool {
		mu.Lock()
		defer mu.Unlock()
		total := 0
		for _, r := range replays {
			total += r
		}
		return total >= 40
	})
	running(func() bool { // the pruner
		_, err := st.PruneBatch(ctx, store.PruneParams{Retention: time.Hour, DeadRetention: time.Hour, BatchSize: 40})
		if err != nil {
			t.Error(err)
		}
		return err == nil
	})
	// Until the pruner has deleted a good part of the ledger while the
	// others ran.
	eventually.Require(t, time.Minute, "the pruner to delete half the ledger", func() bool {
		have, err := st.StoredEvents(ctx, ids)
		return err == nil && len(have) <= n/2
	})
	close(stop)
	wg.Wait()
	have, err := st.StoredEvents(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, id := range ids {
		r, d := replays[id], deliveries[id]
		total += r
		switch {
		case r-d < 0 || r-d > 1:
			t.Errorf("%s: replayed %d times, delivered %d times: they must alternate", id, r, d)
		case r-d == 1 && !have[id]:
			t.Errorf("%s: replayed and not delivered since, but the pruner deleted it", id)
		case r-d == 1 && deliveryRow(t, pool, id, "billing").status != store.StatusPending:
			t.Errorf("%s: replayed and not delivered since, but not pending", id)
		}
	}
	if total == 0 {
		t.Fatal("nothing was replayed: the race did not happen")
	}
}
