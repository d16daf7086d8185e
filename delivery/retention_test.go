package delivery_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/store"
)

func TestPruneDeletesOnlyOldDeliveredAndOlderDead(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ctx := context.Background()
	rows := []struct {
		id       string
		statuses []string // one delivery per status; none: unrouted
		age      time.Duration
		kept     bool
	}{
		{"evt_delivered_old", []string{"delivered"}, 31 * 24 * time.Hour, false},
		{"evt_delivered_new", []string{"delivered"}, 29 * 24 * time.Hour, true},
		{"evt_pending_old", []string{"pending"}, 200 * 24 * time.Hour, true},
		{"evt_dead_31d", []string{"dead"}, 31 * 24 * time.Hour, true},
		{"evt_dead_91d", []string{"dead"}, 91 * 24 * time.Hour, false},
		{"evt_unrouted_old", nil, 31 * 24 * time.Hour, false},
		{"evt_unrouted_new", nil, 29 * 24 * time.Hour, true},
		{"evt_one_pending_old", []string{"delivered", "pending"}, 40 * 24 * time.Hour, true},
		{"evt_one_dead_31d", []string{"delivered", "dead"}, 31 * 24 * time.Hour, true},
		{"evt_one_dead_91d", []string{"delivered", "dead"}, 91 * 24 * time.Hour, false},
		{"evt_dead_pending_91d", []string{"dead", "pending"}, 91 * 24 * time.Hour, true},
	}
	for _, r := range rows {
		if _, err := pool.Exec(ctx, `INSERT INTO stripe_webhook_events (event_id, event_type, payload, status, received_at)
			VALUES ($1, 'invoice.paid', '{}', 'routed', now() - $2::bigint * interval '1 millisecond')`, r.id, r.age.Milliseconds()); err != nil {
			t.Fatal(err)
		}
		for i, status := range r.statuses {
			if _, err := pool.Exec(ctx, `INSERT INTO stripe_webhook_deliveries (event_id, destination, status, received_at)
				SELECT event_id, $2, $3, received_at FROM stripe_webhook_events WHERE event_id = $1`, r.id, fmt.Sprintf("d%d", i), status); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := pool.Exec(ctx, `INSERT INTO stripe_webhook_delivery_attempts (event_id, ok, instance) VALUES ($1, true, 'test')`, r.id); err != nil {
			t.Fatal(err)
		}
	}
	// A row of the previous version, not adopted yet, is left alone.
	if _, err := pool.Exec(ctx, `INSERT INTO stripe_webhook_events (event_id, event_type, payload, status, received_at)
		VALUES ('evt_legacy_old', 'invoice.paid', '{}', 'delivered', now() - interval '40 days')`); err != nil {
		t.Fatal(err)
	}
	rows = append(rows, struct {
		id       string
		statuses []string
		age      time.Duration
		kept     bool
	}{id: "evt_legacy_old", kept: true})
	p, err := delivery.NewPruner(delivery.PrunerConfig{Pool: pool, Retention: 720 * time.Hour, BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	n, err := p.Prune(ctx)
	if err != nil || n != 4 {
		t.Fatalf("Prune: %d, %v; want 4 events", n, err)
	}
	for _, r := range rows {
		var events, deliveries, attempts int
		if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM stripe_webhook_events WHERE event_id = $1),
			(SELECT count(*) FROM stripe_webhook_deliveries WHERE event_id = $1),
			(SELECT count(*) FROM stripe_webhook_delivery_attempts WHERE event_id = $1)`, r.id).Scan(&events, &deliveries, &attempts); err != nil {
			t.Fatal(err)
		}
		want := 0
		if r.kept {
			want = len(r.statuses)
		}
		if kept := events == 1; kept != r.kept || deliveries != want || (r.id != "evt_legacy_old" && attempts != events) {
			t.Errorf("%s: %d rows, %d deliveries, %d attempts; want kept=%v with its deliveries and history", r.id, events, deliveries, attempts, r.kept)
		}
	}
}

// TestPruneKeepsADeadLetterFromWhenItDied: a delivery that went dead just
// now keeps its event, however old, for the dead retention; one that went
// dead longer ago than that does not.
func TestPruneKeepsADeadLetterFromWhenItDied(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ctx := context.Background()
	for _, r := range []struct {
		id   string
		died time.Duration
	}{{"evt_died_now", 0}, {"evt_died_long_ago", 91 * 24 * time.Hour}} {
		if _, err := pool.Exec(ctx, `WITH e AS (INSERT INTO stripe_webhook_events (event_id, event_type, payload, status, received_at)
				VALUES ($1, 'invoice.paid', '{}', 'routed', now() - interval '100 days') RETURNING event_id, received_at)
			INSERT INTO stripe_webhook_deliveries (event_id, destination, status, dead_at, received_at)
			SELECT event_id, 'billing', 'dead', now() - $2::bigint * interval '1 millisecond', received_at FROM e`, r.id, r.died.Milliseconds()); err != nil {
			t.Fatal(err)
		}
	}
	p, err := delivery.NewPruner(delivery.PrunerConfig{Pool: pool, Retention: 720 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := p.Prune(ctx); err != nil || n != 1 {
		t.Fatalf("Prune: %d, %v; want only the event whose delivery died long ago", n, err)
	}
	var left string
	if err := pool.QueryRow(ctx, `SELECT string_agg(event_id, ',') FROM stripe_webhook_events`).Scan(&left); err != nil || left != "evt_died_now" {
		t.Fatalf("left %q (%v), want evt_died_now", left, err)
	}
}

// TestPruneSkipsAnEventBeingReplayed: a replay that is putting an old
// event's delivery back to pending holds the event, and the pruner leaves
// it; after the replay the pending delivery keeps it.
func TestPruneSkipsAnEventBeingReplayed(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `WITH e AS (INSERT INTO stripe_webhook_events (event_id, event_type, payload, status, received_at)
			VALUES ('evt_replayed_old', 'invoice.paid', '{}'::bytea, 'routed', now() - interval '40 days') RETURNING event_id, received_at)
		INSERT INTO stripe_webhook_deliveries (event_id, destination, status, received_at)
		SELECT event_id, 'billing', 'delivered', received_at FROM e`); err != nil {
		t.Fatal(err)
	}
	p, err := delivery.NewPruner(delivery.PrunerConfig{Pool: pool, Retention: 720 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// A replay under way: it has locked the event as Replay does, and
	// updated the delivery, but not committed yet.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT 1 FROM stripe_webhook_events WHERE event_id = 'evt_replayed_old' FOR KEY SHARE`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `UPDATE stripe_webhook_deliveries SET status = 'pending' WHERE event_id = 'evt_replayed_old'`); err != nil {
		t.Fatal(err)
	}
	if n, err := p.Prune(ctx); err != nil || n != 0 {
		t.Fatalf("Prune during the replay: %d, %v; want the event left alone", n, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := p.Prune(ctx); err != nil || n != 0 {
		t.Fatalf("Prune after the replay: %d, %v; a pending delivery keeps its event", n, err)
	}
	found, err := store.New(pool).ReplayIDs(ctx, []string{"evt_replayed_old"}, store.ReplayIDsOptions{})
	if err != nil || len(found) != 1 {
		t.Fatalf("Replay: %v, %v", found, err)
	}
}

// TestPrunerReachesEventsBehindAKeptBlock: the Pruner walks over a block
// of kept events (dead letters, here, of a destination down for days)
// many times its ScanSize, a bounded batch at a time, and deletes the
// prunable events behind it.
func TestPrunerReachesEventsBehindAKeptBlock(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO stripe_webhook_events (event_id, event_type, payload, status, received_at)
		SELECT 'evt_dead_' || lpad(i::text, 4, '0'), 'invoice.paid', '{}'::bytea, 'routed', now() - interval '40 days' + i * interval '1 millisecond'
		FROM generate_series(1, 400) i
		UNION ALL
		SELECT 'evt_done_' || lpad(i::text, 4, '0'), 'invoice.paid', '{}'::bytea, 'routed', now() - interval '35 days' + i * interval '1 millisecond'
		FROM generate_series(1, 30) i`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO stripe_webhook_deliveries (event_id, destination, status, dead_at, received_at)
		SELECT event_id, 'billing', CASE WHEN event_id LIKE 'evt_dead_%' THEN 'dead' ELSE 'delivered' END,
			CASE WHEN event_id LIKE 'evt_dead_%' THEN now() - interval '1 day' END, received_at
		FROM stripe_webhook_events`); err != nil {
		t.Fatal(err)
	}
	p, err := delivery.NewPruner(delivery.PrunerConfig{Pool: pool, Retention: 720 * time.Hour, BatchSize: 5, ScanSize: 20, Duty: 1})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := p.Prune(ctx); err != nil || n != 30 {
		t.Fatalf("Prune: %d, %v; want the 30 events behind the block", n, err)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM stripe_webhook_events WHERE event_id LIKE 'evt_dead_%'`).Scan(&left); err != nil || left != 400 {
		t.Fatalf("%d dead letters left (%v), want all 400", left, err)
	}
}
