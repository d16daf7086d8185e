package admin_test

import (
	"context"
	"testing"

	"github.com/oncehook/oncehook/admin"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/store"
)

// TestReplayIsBatched: a replay of dead letters, of a filter or of ids,
// and a backfill, run as many bounded statements; Max bounds a replay by
// filter; every dead letter of every destination is replayed when no
// destination is named.
func TestReplayIsBatched(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Postgres(t)
	a := admin.New(store.New(pool))
	if _, err := pool.Exec(ctx, `INSERT INTO stripe_webhook_events (event_id, event_type, payload, status, received_at)
		SELECT format('evt_b_%s', lpad(i::text, 4, '0')), 'invoice.paid', '{}', 'routed', now() - i * interval '1 second'
		FROM generate_series(1, 250) i`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO stripe_webhook_deliveries (event_id, destination, status, attempts, received_at)
		SELECT event_id, d, 'dead', 15, received_at FROM stripe_webhook_events, unnest(ARRAY['a', 'b']) d`); err != nil {
		t.Fatal(err)
	}
	pending := func() int {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM stripe_webhook_deliveries WHERE status = 'pending'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	p := admin.ReplayParams{Status: store.StatusDead, Destination: "a", BatchSize: 40}
	if n, err := a.CountDead(ctx, p); err != nil || n != 250 {
		t.Fatalf("CountDead: %d, %v", n, err)
	}
	p.Max = 100
	r, err := a.Replay(ctx, p)
	if err != nil || r.Replayed != 100 || r.Batches != 3 || pending() != 100 {
		t.Fatalf("at most 100 in batches of 40: %+v, %v", r, err)
	}
	r, err = a.Replay(ctx, admin.ReplayParams{Status: store.StatusDead, BatchSize: 40})
	if err != nil || r.Replayed != 400 || r.Batches < 10 || pending() != 500 {
		t.Fatalf("every destination's: %+v, %v; want the other 400", r, err)
	}
	ids := make([]string, 0, 250)
	for i := 1; i <= 250; i++ {
		ids = append(ids, "evt_b_"+string(rune('0'+i/1000))+string(rune('0'+i/100%10))+string(rune('0'+i/10%10))+string(rune('0'+i%10)))
	}
	r, err = a.Replay(ctx, admin.ReplayParams{IDs: ids, Destination: "c", Create: true, BatchSize: 100})
	if err != nil || r.Replayed != 250 || len(r.IDs) != 250 || r.Batches != 3 {
		t.Fatalf("by ids in batches of 100: %+v, %v", r.Replayed, err)
	}
	r, err = a.Replay(ctx, admin.ReplayParams{Backfill: &route.Filter{}, Destination: "d", Since: testStart, BatchSize: 60})
	if err != nil || r.Replayed != 250 || r.Batches != 5 {
		t.Fatalf("backfill in batches of 60: %+v, %v", r, err)
	}
	for _, bad := range []admin.ReplayParams{
		{}, {IDs: ids, Status: store.StatusDead}, {Backfill: &route.Filter{}, Status: store.StatusDead},
		{Backfill: &route.Filter{}, Destination: "d"}, {Status: store.StatusPending, Destination: "a"},
	} {
		if _, err := a.Replay(ctx, bad); err == nil {
			t.Errorf("%+v: want an error", bad)
		}
	}
}
