package migrations_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/migrations"
	"github.com/oncehook/oncehook/store"
)

// version10Rows is version9Rows with a key's deliveries in every state
// (one in flight under a lease, one due behind it, one delivered, one
// dead), a recorded timeline and a healed failover.
const version10Rows = version9Rows + `;
INSERT INTO stripe_webhook_events (event_id, event_type, livemode, payload, status, source, received_at)
SELECT 'evt_v10_' || s, 'customer.updated', false, format('{"id":"evt_v10_%s"}', s)::bytea, 'routed', NULL, now() - interval '1 minute'
FROM unnest('{a,b,c,d}'::text[]) s;
INSERT INTO stripe_webhook_deliveries (event_id, destination, status, attempts, next_attempt_at, locked_until, last_error,
	delivered_at, dead_at, received_at, order_key, order_created)
VALUES ('evt_v10_a', 'crm', 'delivered', 1, now(), NULL, NULL, now() - interval '20 seconds', NULL, now() - interval '1 minute', 'cus_2', now() - interval '4 seconds'),
       ('evt_v10_b', 'crm', 'dead', 15, now(), NULL, 'sink answered 500', NULL, now() - interval '10 seconds', now() - interval '1 minute', 'cus_2', now() - interval '3 seconds'),
       ('evt_v10_c', 'crm', 'pending', 1, now() + interval '1 minute', now() + interval '1 minute', 'timeout', NULL, NULL, now() - interval '1 minute', 'cus_2', now() - interval '2 seconds'),
       ('evt_v10_d', 'crm', 'pending', 0, now() - interval '1 second', NULL, NULL, NULL, NULL, now() - interval '1 minute', 'cus_2', now() - interval '1 second');
INSERT INTO oncehook_timeline (timeline) VALUES (3);
INSERT INTO oncehook_failovers (new_timeline, old_timeline, window_start, window_end, listed_through, healed_at, recovered)
VALUES (3, 2, now() - interval '2 hours', now() - interval '1 hour', now() - interval '1 hour', now() - interval '50 minutes', 7)`

// TestUpgradeFromVersion10KeepsEveryRow upgrades a live version-10 schema
// with rows in every state: every ledger row, delivery (keyed ones in
// every state), attempt, checkpoint, recorded destination, timeline and
// failover is kept as it was, the index of leased keyed deliveries is
// gone, and the order rule holds as before: a claim leaves the key whose
// delivery is in flight, and takes the due head of a free key.
func TestUpgradeFromVersion10KeepsEveryRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.EmptySchema(t, testenv.DatabaseURL(t))
	if _, err := migrations.ApplyUpTo(ctx, pool, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, version10Rows); err != nil {
		t.Fatal(err)
	}
	const (
		timeline    = `SELECT string_agg(format('%s|%s', timeline, updated_at), ';') FROM oncehook_timeline`
		failovers   = `SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s|%s', new_timeline, old_timeline, detected_at, window_start, window_end, listed_through, healed_at, recovered), ';') FROM oncehook_failovers`
		leasedIndex = `SELECT count(*)::text FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'stripe_webhook_deliveries_order_leased_idx'`
	)
	if got := scalar(t, pool, leasedIndex); got != "1" {
		t.Fatalf("version 10 has %s indexes of leased keyed deliveries, want 1", got)
	}
	queries := append(slices.Clone(version9Queries), timeline, failovers)
	before := make([]string, len(queries))
	for i, q := range queries {
		before[i] = scalar(t, pool, q)
	}
	applied, err := migrations.Apply(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != migrations.Latest()-10 {
		t.Fatalf("applied %v on a version-10 schema", applied)
	}
	for i, q := range queries {
		if after := scalar(t, pool, q); after != before[i] {
			t.Fatalf("changed by the upgrade:\nbefore %s\nafter  %s", before[i], after)
		}
	}
	if got := scalar(t, pool, leasedIndex); got != "0" {
		t.Fatalf("%s indexes of leased keyed deliveries after the upgrade, want none", got)
	}

	st := store.New(pool)
	claim := func(dest string) []string {
		t.Helper()
		claimed, err := st.Claim(ctx, store.ClaimParams{Destination: dest, Limit: 10, RoomBytes: 1 << 20, Lease: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, c := range claimed {
			ids = append(ids, c.Event.ID)
		}
		slices.Sort(ids)
		return ids
	}
	if got := claim("crm"); len(got) != 0 {
		t.Fatalf("claimed %v at crm, where cus_2 has a delivery in flight and the rest is leased", got)
	}
	if got := claim("billing"); !slices.Equal(got, []string{"evt_v7_c"}) {
		t.Fatalf("claimed %v at billing, want the due head of cus_1 (evt_v7_c)", got)
	}
}

// TestUpgradeTo11BehindALongTransactionFailsInsteadOfHoldingWrites: a
// transaction that keeps the deliveries table open (a long report, an
// idle psql session) makes migration 0011 fail after its lock timeout,
// rather than wait with every write queued behind it; once that
// transaction ends, the migration applies.
func TestUpgradeTo11BehindALongTransactionFailsInsteadOfHoldingWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.EmptySchema(t, testenv.DatabaseURL(t))
	if _, err := migrations.ApplyUpTo(ctx, pool, 10); err != nil {
		t.Fatal(err)
	}
	long, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Rollback(ctx)
	if _, err := long.Exec(ctx, `SELECT count(*) FROM stripe_webhook_deliveries`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = migrations.Apply(ctx, pool)
	if err == nil || !strings.Contains(err.Error(), "0011") || !strings.Contains(err.Error(), "lock timeout") {
		t.Fatalf("applying 0011 behind a long transaction: %v; want its lock timeout, naming the migration", err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Fatalf("the failed migration took %s, want about its 10 s lock timeout", took)
	}
	if v, err := migrations.Current(ctx, pool); err != nil || v != 10 {
		t.Fatalf("schema %d (%v) after the failed migration, want 10", v, err)
	}
	// Meanwhile the table took writes; once the transaction ends, it applies.
	if _, err := pool.Exec(ctx, version10Rows); err != nil {
		t.Fatal(err)
	}
	if err := long.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if applied, err := migrations.Apply(ctx, pool); err != nil || len(applied) != migrations.Latest()-10 {
		t.Fatalf("applied %v, %v after the transaction ended", applied, err)
	}
}
