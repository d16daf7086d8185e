package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/store"
)

// replayLedger stores evt_r_0000..: events one second apart, each with a
// delivery to a (dead at odd i, delivered at even i) and, for i % 3 = 0,
// a delivered one to b; of type invoice.paid, or charge.x for i % 4 = 1;
// live for i % 5 = 0.
func replayLedger(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `
		INSERT INTO stripe_webhook_events (event_id, event_type, livemode, payload, received_at, status)
		SELECT format('evt_r_%s', lpad(i::text, 4, '0')), CASE WHEN i % 4 = 1 THEN 'charge.x' ELSE 'invoice.paid' END, i % 5 = 0,
			'{}', timestamptz '2026-01-01' + i * interval '1 second', 'routed'
		FROM generate_series(0, $1 - 1) i`, n)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(context.Background(), `
		INSERT INTO stripe_webhook_deliveries (event_id, destination, status, attempts, dead_at, delivered_at, received_at)
		SELECT event_id, 'a', CASE WHEN i % 2 = 1 THEN 'dead' ELSE 'delivered' END, 15,
			CASE WHEN i % 2 = 1 THEN now() - interval '1 hour' END, CASE WHEN i % 2 = 0 THEN now() - interval '1 hour' END, received_at
		FROM (SELECT event_id, received_at, substr(event_id, 7)::int i FROM stripe_webhook_events) e
		UNION ALL
		SELECT event_id, 'b', 'delivered', 1, NULL, now() - interval '1 hour', received_at
		FROM (SELECT event_id, received_at, substr(event_id, 7)::int i FROM stripe_webhook_events) e WHERE i % 3 = 0`)
	if err != nil {
		t.Fatal(err)
	}
}

func countWhere(t *testing.T, pool *pgxpool.Pool, cond string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM stripe_webhook_deliveries d WHERE `+cond).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestReplayBatchWalksDeadLetters: batches of a walk put back exactly the
// dead letters the filter selects, each once, in bounded steps; a letter
// that died after the walk began is left alone.
func TestReplayBatchWalksDeadLetters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Postgres(t)
	s := store.New(pool)
	replayLedger(t, pool, 400) // 200 dead at a, 100 of them charge.x
	f := store.DeliveryFilter{Status: store.StatusDead, Destination: "a", Types: []string{"invoice.*"}}
	if n, err := s.CountDead(ctx, f); err != nil || n != 100 {
		t.Fatalf("CountDead: %d, %v; want 100", n, err)
	}
	started, err := s.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// One letter dies after the walk began: not replayed.
	if _, err := pool.Exec(ctx, `UPDATE stripe_webhook_deliveries SET dead_at = now() + interval '1 minute' WHERE event_id = 'evt_r_0003' AND destination = 'a'`); err != nil {
		t.Fatal(err)
	}
	b := store.Batch{Size: 7, Started: started}
	var total int64
	batches := 0
	for {
		r, err := s.ReplayBatch(ctx, f, b)
		if err != nil {
			t.Fatal(err)
		}
		if r.N > 7 {
			t.Fatalf("a batch of 7 replayed %d", r.N)
		}
		total += r.N
		batches++
		if r.Next == nil {
			break
		}
		if !r.Next.At.After(b.After.At) && r.Next.ID <= b.After.ID {
			t.Fatalf("the walk went back: %+v after %+v", r.Next, b.After)
		}
		b.After = *r.Next
	}
	if total != 99 || batches < 99/7 {
		t.Fatalf("replayed %d in %d batches; want 99 (100 less the one that died after) in at least %d", total, batches, 99/7)
	}
	if got := countWhere(t, pool, `status = 'pending' AND attempts = 0 AND destination = 'a'`); got != 99 {
		t.Errorf("%d pending at a, want 99", got)
	}
	if got := countWhere(t, pool, `status = 'dead' AND destination = 'a'`); got != 101 {
		t.Errorf("%d still dead at a, want 101 (100 charge.x and the late one)", got)
	}
	if _, err := s.ReplayBatch(ctx, store.DeliveryFilter{Status: store.StatusDead}, store.Batch{Size: 1}); err == nil {
		t.Error("dead letters of no destination were walked")
	}
	if _, err := s.ReplayBatch(ctx, store.DeliveryFilter{Status: store.StatusPending, Destination: "a"}, store.Batch{Size: 1}); err == nil {
		t.Error("pending deliveries were replayed")
	}
}

// TestReplayBatchDeliveredAndBackfill: delivered deliveries are walked
// through the ledger, at one destination or all; a backfill creates the
// deliveries a destination lacks, by its filter, once.
func TestReplayBatchDeliveredAndBackfill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Postgres(t)
	s := store.New(pool)
	replayLedger(t, pool, 120)                           // delivered: 60 at a, 40 at b
	since := time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC) // i >= 60: 30 at a, 20 at b
	var total int64
	b := store.Batch{Size: 11}
	for {
		r, err := s.ReplayBatch(ctx, store.DeliveryFilter{Status: store.StatusDelivered, Since: since}, b)
		if err != nil {
			t.Fatal(err)
		}
		total += r.N
		if r.Next == nil {
			break
		}
		b.After = *r.Next
	}
	if total != 50 || countWhere(t, pool, `status = 'pending'`) != 50 {
		t.Fatalf("replayed %d delivered since %s, want 50", total, since)
	}

	// c takes live invoice.* events: i % 5 = 0 and i % 4 <> 1, since i >= 60.
	filter := route.Filter{Types: []string{"invoice.*"}, Livemode: route.Live}
	backfill := func() int64 {
		var total int64
		b := store.Batch{Size: 5}
		for {
			r, err := s.BackfillBatch(ctx, "c", filter, since, b)
			if err != nil {
				t.Fatal(err)
			}
			total += r.N
			if r.Next == nil {
				return total
			}
			b.After = *r.Next
		}
	}
	if n := backfill(); n != 9 {
		t.Fatalf("backfilled %d, want 9", n)
	}
	if n := backfill(); n != 0 {
		t.Fatalf("a second backfill created %d", n)
	}
	if got := countWhere(t, pool, `destination = 'c' AND status = 'pending' AND EXISTS (SELECT 1 FROM stripe_webhook_events e
		WHERE e.event_id = d.event_id AND e.livemode AND e.event_type = 'invoice.paid' AND e.received_at >= '2026-01-01 00:01:00+00')`); got != 9 {
		t.Errorf("%d matching pending deliveries at c, want 9", got)
	}
}

// TestReplayIDs: every delivery of the events, or one destination's
// (created when Create), or only existing dead ones.
func TestReplayIDs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Postgres(t)
	s := store.New(pool)
	replayLedger(t, pool, 6) // 0: a delivered, b delivered; 1: a dead; 2: a delivered
	found, err := s.ReplayIDs(ctx, []string{"evt_r_0002", "evt_r_0001", "evt_nope"}, store.ReplayIDsOptions{Destination: "a", Existing: true, OnlyDead: true})
	if err != nil || !slices.Equal(found, []string{"evt_r_0001"}) {
		t.Fatalf("only dead: %v, %v", found, err)
	}
	found, err = s.ReplayIDs(ctx, []string{"evt_r_0002", "evt_r_0001"}, store.ReplayIDsOptions{Destination: "a", Existing: true})
	if err != nil || !slices.Equal(found, []string{"evt_r_0002"}) {
		t.Fatalf("existing, not pending: %v, %v", found, err)
	}
	found, err = s.ReplayIDs(ctx, []string{"evt_r_0002"}, store.ReplayIDsOptions{Destination: "b", Existing: true})
	if err != nil || len(found) != 0 {
		t.Fatalf("existing only created a delivery: %v, %v", found, err)
	}
	found, err = s.ReplayIDs(ctx, []string{"evt_r_0002", "evt_nope"}, store.ReplayIDsOptions{Destination: "b", Create: true})
	if err != nil || !slices.Equal(found, []string{"evt_r_0002"}) || countWhere(t, pool, `event_id = 'evt_r_0002' AND destination = 'b' AND status = 'pending'`) != 1 {
		t.Fatalf("create: %v, %v", found, err)
	}
	found, err = s.ReplayIDs(ctx, []string{"evt_r_0000"}, store.ReplayIDsOptions{})
	if err != nil || !slices.Equal(found, []string{"evt_r_0000"}) || countWhere(t, pool, `event_id = 'evt_r_0000' AND status = 'pending'`) != 2 {
		t.Fatalf("every delivery: %v, %v", found, err)
	}
	if _, err := s.ReplayIDs(ctx, []string{"evt_r_0000"}, store.ReplayIDsOptions{Existing: true}); err == nil {
		t.Error("existing deliveries of no destination")
	}
}
