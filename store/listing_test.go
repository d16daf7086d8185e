package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/store"
)

// fillPagesLedger stores n events, received one second apart in groups of
// three that share a timestamp (as a group commit does), with deliveries
// at destinations a, b and c in every state, and unrouted events.
func fillPagesLedger(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO stripe_webhook_events (event_id, event_type, payload, received_at, status)
		SELECT format('evt_%s', lpad(i::text, 7, '0')),
			CASE WHEN i % 997 = 0 THEN 'invoice.rare' WHEN i % 2 = 0 THEN 'invoice.paid' ELSE 'charge.succeeded' END,
			'{}', timestamptz '2026-01-01' + (i / 3) * interval '1 second', 'routed'
		FROM generate_series(1, $1) i`, n)
	if err != nil {
		t.Fatal(err)
	}
	// a: every event but those with i % 10 = 1 (of which those that are
	// no multiple of 3 are unrouted), dead at each odd one (more than the
	// scan budget); b: each 5th, dead at each 7th; c: each 3rd, pending at
	// each 11th.
	_, err = pool.Exec(ctx, `INSERT INTO stripe_webhook_deliveries (event_id, destination, status, received_at)
		SELECT event_id, 'a', CASE WHEN i % 2 = 1 THEN 'dead' ELSE 'delivered' END, received_at
			FROM (SELECT event_id, received_at, substr(event_id, 5)::int i FROM stripe_webhook_events) e WHERE i % 10 <> 1
		UNION ALL
		SELECT event_id, 'b', CASE WHEN i % 7 = 0 THEN 'dead' ELSE 'delivered' END, received_at
			FROM (SELECT event_id, received_at, substr(event_id, 5)::int i FROM stripe_webhook_events) e WHERE i % 5 = 0
		UNION ALL
		SELECT event_id, 'c', CASE WHEN i % 11 = 0 THEN 'pending' ELSE 'delivered' END, received_at
			FROM (SELECT event_id, received_at, substr(event_id, 5)::int i FROM stripe_webhook_events) e WHERE i % 3 = 0`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE stripe_webhook_events; ANALYZE stripe_webhook_deliveries`); err != nil {
		t.Fatal(err)
	}
}

// expectedIDs is the brute-force answer to f, newest first.
func expectedIDs(t *testing.T, pool *pgxpool.Pool, f store.ListParams) []string {
	t.Helper()
	until := f.Until
	if until.IsZero() {
		until = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	rows, err := pool.Query(context.Background(), `SELECT e.event_id, e.event_type FROM stripe_webhook_events e
		WHERE $1 AND e.received_at >= $4 AND e.received_at < $5 AND CASE
			WHEN $2 = 'unrouted' THEN NOT EXISTS (SELECT 1 FROM stripe_webhook_deliveries d WHERE d.event_id = e.event_id)
			WHEN $2 = '' AND $3 = '' THEN true
			ELSE EXISTS (SELECT 1 FROM stripe_webhook_deliveries d WHERE d.event_id = e.event_id
				AND ($2 = '' OR d.status = $2) AND ($3 = '' OR d.destination = $3)) END
		ORDER BY e.received_at DESC, e.event_id COLLATE "C" DESC`, true, f.Status, f.Destination, f.Since, until)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for rows.Next() {
		var id, typ string
		if err := rows.Scan(&id, &typ); err != nil {
			t.Fatal(err)
		}
		// The type patterns, matched as a destination's filter does.
		if (route.Filter{Types: f.Types}).Match(typ, false) {
			ids = append(ids, id)
		}
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	return ids
}

// walkPages follows Next from the first page to the last and returns
// every event id in order, and how many pages ended early.
func walkPages(t *testing.T, pool *pgxpool.Pool, f store.ListParams) (ids []string, partial int) {
	t.Helper()
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatalf("%+v: more than 10000 pages", f)
		}
		p, err := store.New(pool).ListEvents(context.Background(), f)
		if err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
		if len(p.Events) > f.Limit {
			t.Fatalf("%+v: %d events on a page of %d", f, len(p.Events), f.Limit)
		}
		for _, e := range p.Events {
			ids = append(ids, e.ID)
			if f.Destination != "" && !slices.ContainsFunc(e.Deliveries, func(r store.EventRow) bool { return r.Destination == f.Destination }) {
				t.Fatalf("%+v: %s has no delivery to %s: %+v", f, e.ID, f.Destination, e.Deliveries)
			}
		}
		if p.Partial {
			partial++
		}
		if p.Next == nil {
			return ids, partial
		}
		f.After = *p.Next
	}
}

// TestListEventsMatchesABruteForceWalk: following the keyset cursors of
// ListEvents from the first page to the last lists exactly the events a
// full scan finds, in order, once each, for every kind of filter, also
// where the filter is sparse enough that the scan budget ends pages early.
func TestListEventsMatchesABruteForceWalk(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	n := 3 * store.PageScanBudget
	fillPagesLedger(t, pool, n)
	mid := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n/6) * time.Second)
	filters := []store.ListParams{
		{Limit: 500},
		{Limit: 37, Types: []string{"invoice.*"}},
		{Limit: 50, Types: []string{"invoice.rare*"}},
		{Limit: 50, Types: []string{"invoice.rare*"}, Destination: "a"},
		{Limit: 200, Status: store.StatusDead},
		{Limit: 50, Status: store.StatusDead, Destination: "b"},
		{Limit: 50, Status: store.StatusDead, Types: []string{"invoice.rare*"}},
		{Limit: 100, Status: store.StatusPending},
		{Limit: 100, Status: store.StatusPending, Destination: "c", Since: mid},
		{Limit: 200, Status: store.StatusDelivered, Destination: "b", Until: mid},
		{Limit: 200, Status: store.StatusUnrouted},
		{Limit: 50, Status: store.StatusUnrouted, Types: []string{"invoice.rare*"}},
		{Limit: 50, Types: []string{"no_such_type*"}},
	}
	for _, f := range filters {
		t.Run(fmt.Sprintf("%s/%s/%s", f.Status, f.Destination, f.Types), func(t *testing.T) {
			want := expectedIDs(t, pool, f)
			got, partial := walkPages(t, pool, f)
			if !slices.Equal(got, want) {
				t.Fatalf("%+v: paged %d ids, a full scan finds %d (first difference at %d)",
					f, len(got), len(want), firstDifference(got, want))
			}
			t.Logf("%+v: %d events, %d pages ended early", f, len(got), partial)
		})
	}
}

func firstDifference(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestListEventsMergesDestinationsWithoutSkipping: when one destination's
// walk spends its budget on rows that do not match, a page merged from
// several destinations must not list another destination's older matches
// past where that walk stopped (they would hide the first one's matches
// in between for good).
func TestListEventsMergesDestinationsWithoutSkipping(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ctx := context.Background()
	// a: 3,000 dead letters, one a second, all charge.x but one
	// invoice.paid at t=1350: its first walk (half the budget) stops long
	// before it. b: a dead invoice.paid every 40 s, so that a page of b's
	// reaches far below where a's walk stopped.
	_, err := pool.Exec(ctx, `
		INSERT INTO stripe_webhook_events (event_id, event_type, payload, received_at, status)
		SELECT format('evt_a_%s', lpad(i::text, 5, '0')), CASE WHEN i = 1350 THEN 'invoice.paid' ELSE 'charge.x' END,
			'{}'::bytea, timestamptz '2026-01-01' + i * interval '1 second', 'routed' FROM generate_series(0, 2999) i
		UNION ALL
		SELECT format('evt_b_%s', lpad(i::text, 5, '0')), 'invoice.paid', '{}'::bytea, timestamptz '2026-01-01' + i * interval '1 second', 'routed'
		FROM generate_series(20, 2980, 40) i;
		INSERT INTO stripe_webhook_deliveries (event_id, destination, status, received_at)
		SELECT event_id, substr(event_id, 5, 1), 'dead', received_at FROM stripe_webhook_events`)
	if err != nil {
		t.Fatal(err)
	}
	f := store.ListParams{Status: store.StatusDead, Types: []string{"invoice.*"}, Limit: 50}
	want := expectedIDs(t, pool, f)
	got, _ := walkPages(t, pool, f)
	if !slices.Equal(got, want) || !slices.Contains(got, "evt_a_01350") {
		t.Fatalf("paged %d ids, a full scan finds %d; evt_a_01350 listed: %t", len(got), len(want), slices.Contains(got, "evt_a_01350"))
	}
}
