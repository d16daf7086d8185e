package migrations_test

import (
	"context"
	"testing"

	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/migrations"
)

// TestUpgradeFromVersion4KeepsEveryRow upgrades a live version-4 schema,
// with rows in every delivery state and their history, to the latest, and
// checks that every row and its state are kept and that the database has
// its Redis key namespace.
func TestUpgradeFromVersion4KeepsEveryRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Postgres(t)
	if _, err := pool.Exec(ctx, "DROP TABLE stripe_webhook_delivery_attempts, stripe_webhook_events, oncehook_schema_migrations, oncehook_identity"); err != nil {
		t.Fatal(err)
	}
	if _, err := migrations.ApplyUpTo(ctx, pool, 4); err != nil {
		t.Fatal(err)
	}
	_, err := pool.Exec(ctx, `
		INSERT INTO stripe_webhook_events (event_id, event_type, payload, status, attempts, locked_until, last_error, delivered_at)
		VALUES ('evt_pending', 'invoice.paid', '{"id":"evt_pending"}', 'pending', 2, now() + interval '1 minute', 'sink down', NULL),
		       ('evt_delivered', 'invoice.paid', '{"id":"evt_delivered"}', 'delivered', 1, NULL, NULL, now()),
		       ('evt_dead', 'customer.created', '{"id":"evt_dead"}', 'dead', 15, NULL, 'sink answered 500', NULL);
		INSERT INTO stripe_webhook_delivery_attempts (event_id, ok, error, instance)
		VALUES ('evt_pending', false, 'sink down', 'a'), ('evt_delivered', true, NULL, 'a'), ('evt_dead', false, 'sink answered 500', 'a')`)
	if err != nil {
		t.Fatal(err)
	}
	snapshot := func() string {
		var s string
		err := pool.QueryRow(ctx, `SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s', event_id, status, attempts, locked_until, last_error, delivered_at, payload), ';' ORDER BY event_id)
			|| '#' || (SELECT string_agg(format('%s|%s|%s', event_id, ok, error), ';' ORDER BY event_id) FROM stripe_webhook_delivery_attempts)
			FROM stripe_webhook_events`).Scan(&s)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := snapshot()
	applied, err := migrations.Apply(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != migrations.Latest()-4 {
		t.Fatalf("applied %v on a version-4 schema", applied)
	}
	if after := snapshot(); after != before {
		t.Fatalf("rows changed by the upgrade:\nbefore %s\nafter  %s", before, after)
	}
	var n int
	var ns string
	if err := pool.QueryRow(ctx, `SELECT count(*), min(namespace) FROM oncehook_identity`).Scan(&n, &ns); err != nil || n != 1 || len(ns) != 32 {
		t.Fatalf("oncehook_identity: %d rows, namespace %q, %v; want one 32-character namespace", n, ns, err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO oncehook_identity DEFAULT VALUES`); err == nil {
		t.Fatal("a second namespace row was accepted")
	}
}
