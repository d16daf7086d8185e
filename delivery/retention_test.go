package delivery_test

import (
	"context"
	"testing"
	"time"

	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/internal/testenv"
)

func TestPruneDeletesOnlyOldDeliveredAndOlderDead(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ctx := context.Background()
	rows := []struct {
		id, status string
		age        time.Duration
		kept       bool
	}{
		{"evt_delivered_old", "delivered", 31 * 24 * time.Hour, false},
		{"evt_delivered_new", "delivered", 29 * 24 * time.Hour, true},
		{"evt_pending_old", "pending", 200 * 24 * time.Hour, true},
		{"evt_dead_31d", "dead", 31 * 24 * time.Hour, true},
		{"evt_dead_91d", "dead", 91 * 24 * time.Hour, false},
	}
	for _, r := range rows {
		if _, err := pool.Exec(ctx, `INSERT INTO stripe_webhook_events (event_id, event_type, payload, status, received_at)
			VALUES ($1, 'invoice.paid', '{}', $2, now() - $3::bigint * interval '1 millisecond')`, r.id, r.status, r.age.Milliseconds()); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `INSERT INTO stripe_webhook_delivery_attempts (event_id, ok, instance) VALUES ($1, true, 'test')`, r.id); err != nil {
			t.Fatal(err)
		}
	}
	p, err := delivery.NewPruner(delivery.PrunerConfig{Pool: pool, Retention: 720 * time.Hour, BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	n, err := p.Prune(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Prune: %d, %v; want 2 rows", n, err)
	}
	for _, r := range rows {
		var events, attempts int
		if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM stripe_webhook_events WHERE event_id = $1),
			(SELECT count(*) FROM stripe_webhook_delivery_attempts WHERE event_id = $1)`, r.id).Scan(&events, &attempts); err != nil {
			t.Fatal(err)
		}
		if kept := events == 1; kept != r.kept || attempts != events {
			t.Errorf("%s: %d rows, %d attempts; want kept=%v with its history", r.id, events, attempts, r.kept)
		}
	}
}
