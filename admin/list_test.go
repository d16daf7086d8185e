package admin_test

import (
	"context"
	"testing"
	"time"

	"github.com/oncehook/oncehook/admin"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/store"
)

// testStart is before every event the tests store.
var testStart = time.Now().Add(-24 * time.Hour)

// TestListDeliveries: the command line's rows come from the one listing:
// one per selected delivery, one per unrouted event, newest first, up to
// the limit across pages; type patterns and livemode filter.
func TestListDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Postgres(t)
	a := admin.New(store.New(pool))
	if _, err := pool.Exec(ctx, `INSERT INTO stripe_webhook_events (event_id, event_type, livemode, payload, status, received_at)
		SELECT format('evt_l_%s', lpad(i::text, 4, '0')), CASE WHEN i % 2 = 0 THEN 'invoice.paid' ELSE 'charge.succeeded' END,
			i % 3 = 0, '{}', 'routed', now() - (300 - i) * interval '1 second'
		FROM generate_series(1, 300) i`); err != nil {
		t.Fatal(err)
	}
	// Every event but each 10th has a delivery to a; each 4th one to b,
	// dead: the 10th that are not 4th are unrouted.
	if _, err := pool.Exec(ctx, `INSERT INTO stripe_webhook_deliveries (event_id, destination, status, received_at)
		SELECT event_id, 'a', 'delivered', received_at FROM stripe_webhook_events WHERE substr(event_id, 7)::int % 10 <> 0
		UNION ALL
		SELECT event_id, 'b', 'dead', received_at FROM stripe_webhook_events WHERE substr(event_id, 7)::int % 4 = 0`); err != nil {
		t.Fatal(err)
	}
	live := true
	for _, c := range []struct {
		p    admin.ListParams
		max  int
		want int
	}{
		{admin.ListParams{}, 1000, 270 + 75 + 15},
		{admin.ListParams{Limit: 7}, 1000, 270 + 75 + 15}, // small pages, the same rows
		{admin.ListParams{}, 250, 250},
		{admin.ListParams{Status: store.StatusDead}, 1000, 75},
		{admin.ListParams{Destination: "a"}, 1000, 270},
		{admin.ListParams{Status: store.StatusUnrouted}, 1000, 15},
		{admin.ListParams{Types: []string{"invoice.*"}, Destination: "b"}, 1000, 75},
		{admin.ListParams{Types: []string{"charge.succeeded"}, Status: store.StatusDead}, 1000, 0},
		{admin.ListParams{Types: []string{"invoice.*"}, Livemode: &live, Status: store.StatusDead}, 1000, 25},
	} {
		rows, err := a.ListDeliveries(ctx, c.p, c.max)
		if err != nil || len(rows) != c.want {
			t.Errorf("%+v: %d rows, %v; want %d", c.p, len(rows), err, c.want)
			continue
		}
		for i := 1; i < len(rows); i++ {
			if rows[i].ReceivedAt.After(rows[i-1].ReceivedAt) {
				t.Errorf("%+v: not newest first at row %d", c.p, i)
				break
			}
		}
	}
	// An unrouted event's row carries the event's fields, as a delivery's does.
	if _, err := pool.Exec(ctx, `INSERT INTO stripe_webhook_events (event_id, event_type, livemode, account, api_version, stripe_created, payload, status)
		VALUES ('evt_l_unrouted', 'payout.paid', true, 'acct_1', '2026-01-28.clover', '2026-12-01 10:00:00+00', '{}', 'routed')`); err != nil {
		t.Fatal(err)
	}
	rows, err := a.ListDeliveries(ctx, admin.ListParams{Status: store.StatusUnrouted}, 1)
	if err != nil || len(rows) != 1 {
		t.Fatalf("the newest unrouted event: %+v, %v", rows, err)
	}
	if r := rows[0]; r.ID != "evt_l_unrouted" || r.Account != "acct_1" || r.APIVersion != "2026-01-28.clover" || r.Created == nil || !r.Livemode || r.Destination != "" {
		t.Errorf("unrouted row %+v: want its account, API version, created and livemode", r)
	}
	if _, err := a.ListDeliveries(ctx, admin.ListParams{Types: []string{"invoice.%"}}, 10); err == nil {
		t.Error("a pattern outside the filter language was accepted")
	}
	if _, err := a.ListDeliveries(ctx, admin.ListParams{Status: store.StatusUnrouted, Destination: "a"}, 10); err == nil {
		t.Error("unrouted events of a destination")
	}
}
