package migrations_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/migrations"
	"github.com/oncehook/oncehook/store"
)

// version4Rows fills a version-4 ledger with a row in every delivery
// state, and their history.
const version4Rows = `
INSERT INTO stripe_webhook_events (event_id, event_type, payload, status, attempts, next_attempt_at, locked_until, last_error, delivered_at, received_at)
VALUES ('evt_pending_retry', 'invoice.paid', '{"id":"evt_pending_retry"}', 'pending', 2, now() + interval '7 minutes', NULL, 'sink down', NULL, now() - interval '1 hour'),
       ('evt_pending_due', 'invoice.paid', '{"id":"evt_pending_due"}', 'pending', 0, now() - interval '1 minute', now() - interval '1 minute', NULL, NULL, now() - interval '2 hours'),
       ('evt_pending_leased', 'invoice.paid', '{"id":"evt_pending_leased"}', 'pending', 1, now() + interval '1 minute', now() + interval '1 minute', 'timeout', NULL, now()),
       ('evt_delivered', 'invoice.paid', '{"id":"evt_delivered"}', 'delivered', 1, now(), NULL, NULL, now() - interval '5 minutes', now() - interval '6 minutes'),
       ('evt_dead', 'customer.created', '{"id":"evt_dead"}', 'dead', 15, now(), NULL, 'sink answered 500', NULL, now() - interval '3 days');
INSERT INTO stripe_webhook_delivery_attempts (event_id, ok, error, instance)
VALUES ('evt_pending_retry', false, 'sink down', 'a'), ('evt_delivered', true, NULL, 'a'), ('evt_dead', false, 'sink answered 500', 'a')`

// legacyState is each row's delivery state as version 4 keeps it.
const legacyState = `SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s|%s', event_id, status, attempts, next_attempt_at, locked_until, last_error, delivered_at, received_at), ';' ORDER BY event_id)
	FROM stripe_webhook_events WHERE event_id = ANY($1)`

// deliveryState is the same, read from the deliveries of destination default.
const deliveryState = `SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s|%s', event_id, status, attempts, next_attempt_at, locked_until, last_error, delivered_at, received_at), ';' ORDER BY event_id)
	FROM stripe_webhook_deliveries WHERE destination = 'default' AND event_id = ANY($1)`

func scalar(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) string {
	t.Helper()
	var s *string
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&s); err != nil {
		t.Fatal(err)
	}
	if s == nil {
		return ""
	}
	return *s
}

// TestUpgradeFromVersion4KeepsEveryRow upgrades a live version-4 schema,
// with rows in every delivery state and their history, to the latest. Each
// row becomes a delivery of destination default with its state (attempts,
// next attempt, lease, error), the ledger keeps every payload, and the
// history is kept, for destination default. A row under its lease is left
// to its instance and adopted once the lease ends.
func TestUpgradeFromVersion4KeepsEveryRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.EmptySchema(t, testenv.DatabaseURL(t))
	if _, err := migrations.ApplyUpTo(ctx, pool, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, version4Rows); err != nil {
		t.Fatal(err)
	}
	free := []string{"evt_dead", "evt_delivered", "evt_pending_due", "evt_pending_retry"}
	leased := []string{"evt_pending_leased"}
	all := append(append([]string(nil), free...), leased...)
	before := scalar(t, pool, legacyState, free)
	beforeLeased := scalar(t, pool, legacyState, leased)
	payloads := scalar(t, pool, `SELECT string_agg(event_id || payload::text, ';' ORDER BY event_id) FROM stripe_webhook_events`)
	history := scalar(t, pool, `SELECT string_agg(format('%s|%s|%s', event_id, ok, error), ';' ORDER BY event_id) FROM stripe_webhook_delivery_attempts`)

	applied, err := migrations.Apply(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != migrations.Latest()-4 {
		t.Fatalf("applied %v on a version-4 schema", applied)
	}
	// What every new instance does in the background.
	if n, err := store.New(pool).AdoptLegacy(ctx, 100); err != nil || n != len(free) {
		t.Fatalf("Adopt: %d, %v; want the %d rows not under a lease", n, err, len(free))
	}
	if after := scalar(t, pool, deliveryState, free); after != before {
		t.Fatalf("delivery state changed by the upgrade:\nbefore %s\nafter  %s", before, after)
	}
	if got := scalar(t, pool, `SELECT string_agg(event_id || payload::text, ';' ORDER BY event_id) FROM stripe_webhook_events`); got != payloads {
		t.Fatalf("payloads changed:\nbefore %s\nafter  %s", payloads, got)
	}
	if got := scalar(t, pool, `SELECT string_agg(format('%s|%s|%s', event_id, ok, error), ';' ORDER BY event_id) FROM stripe_webhook_delivery_attempts WHERE destination = 'default'`); got != history {
		t.Fatalf("history changed:\nbefore %s\nafter  %s", history, got)
	}
	// The leased row is still its instance's, in the old columns.
	if got := scalar(t, pool, legacyState, leased); got != beforeLeased {
		t.Fatalf("the leased row was touched: before %s, after %s", beforeLeased, got)
	}
	if got := scalar(t, pool, `SELECT count(*)::text FROM stripe_webhook_deliveries WHERE event_id = ANY($1)`, leased); got != "0" {
		t.Fatalf("the leased row was adopted under its lease")
	}
	// Its lease ends: the new instances adopt it, state and all.
	if _, err := pool.Exec(ctx, `UPDATE stripe_webhook_events SET locked_until = now() - interval '1 second' WHERE event_id = ANY($1)`, leased); err != nil {
		t.Fatal(err)
	}
	beforeLeased = scalar(t, pool, legacyState, leased)
	if n, err := store.New(pool).AdoptLegacy(ctx, 100); err != nil || n != 1 {
		t.Fatalf("Adopt: %d, %v; want the one row whose lease ended", n, err)
	}
	if got := scalar(t, pool, deliveryState, leased); got != beforeLeased {
		t.Fatalf("adopted with another state:\nbefore %s\nafter  %s", beforeLeased, got)
	}
	if got := scalar(t, pool, `SELECT string_agg(DISTINCT status, ',') FROM stripe_webhook_events`); got != "routed" {
		t.Fatalf("ledger statuses after adoption: %s, want every row routed", got)
	}
	if got := scalar(t, pool, `SELECT count(*)::text FROM stripe_webhook_deliveries WHERE event_id = ANY($1) AND destination = 'default'`, all); got != "5" {
		t.Fatalf("%s rows map to destination default, want 5", got)
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

// TestUpgradeAtScale upgrades UPGRADE_ROWS rows (default 20,000; the
// README's figure is for 1,000,000) spread over the states, and checks
// that each one maps to destination default with its state. It logs how
// long the upgrade took.
func TestUpgradeAtScale(t *testing.T) {
	t.Parallel()
	rows := 20_000
	if v := os.Getenv("UPGRADE_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("UPGRADE_ROWS=%q: want a positive number", v)
		}
		rows = n
	}
	ctx := context.Background()
	pool := testenv.EmptySchema(t, testenv.DatabaseURL(t))
	if _, err := migrations.ApplyUpTo(ctx, pool, 4); err != nil {
		t.Fatal(err)
	}
	// Payloads of about 1.5 KB, as a typical Stripe event; one in ten
	// pending (half of those scheduled for a retry), one in fifty dead.
	if _, err := pool.Exec(ctx, `
		INSERT INTO stripe_webhook_events (event_id, event_type, payload, status, attempts, next_attempt_at, last_error, delivered_at, received_at)
		SELECT format('evt_%s', lpad(i::text, 10, '0')), 'invoice.paid',
			convert_to(format('{"id":"evt_%s","pad":"%s"}', i, repeat(md5(i::text), 45)), 'UTF8'),
			CASE WHEN i % 50 = 0 THEN 'dead' WHEN i % 10 = 0 THEN 'pending' ELSE 'delivered' END,
			CASE WHEN i % 50 = 0 THEN 15 WHEN i % 20 = 0 THEN 3 ELSE 1 END,
			now() + (i % 20) * interval '1 minute',
			CASE WHEN i % 10 = 0 THEN 'sink answered 503' END,
			CASE WHEN i % 10 <> 0 THEN now() END,
			now() - (i % 1000) * interval '1 minute'
		FROM generate_series(1, $1) AS i`, rows); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "ANALYZE stripe_webhook_events"); err != nil {
		t.Fatal(err)
	}
	sum := `SELECT format('%s/%s/%s/%s', count(*), sum(attempts), count(*) FILTER (WHERE status = 'pending'), md5(string_agg(format('%s|%s|%s|%s', event_id, status, attempts, next_attempt_at), ',' ORDER BY event_id)))`
	before := scalar(t, pool, sum+` FROM stripe_webhook_events`)
	start := time.Now()
	if _, err := migrations.Apply(ctx, pool); err != nil {
		t.Fatal(err)
	}
	migrated := time.Since(start)
	adopted := 0
	for {
		n, err := store.New(pool).AdoptLegacy(ctx, 1000) // as an instance's adopter does
		if err != nil {
			t.Fatal(err)
		}
		if adopted += n; n == 0 {
			break
		}
	}
	took := time.Since(start)
	if adopted != rows {
		t.Fatalf("adopted %d rows, want %d", adopted, rows)
	}
	if after := scalar(t, pool, sum+` FROM stripe_webhook_deliveries WHERE destination = 'default'`); after != before {
		t.Fatalf("deliveries after the upgrade: %s, want %s (count/attempts/pending/digest)", after, before)
	}
	t.Logf("upgraded %d rows from version 4: migrations %s, then adopted by one instance in %s (%.0f rows/s)",
		rows, migrated.Round(time.Millisecond), (took - migrated).Round(time.Millisecond), float64(rows)/(took-migrated).Seconds())
}

// version6Rows fills a version-6 ledger: events with deliveries to two
// destinations in every state (one under a lease), an unrouted event, and
// their history.
const version6Rows = `
INSERT INTO stripe_webhook_events (event_id, event_type, payload, status, received_at)
VALUES ('evt_v6_a', 'invoice.paid', '{"id":"evt_v6_a"}', 'routed', now() - interval '1 hour'),
       ('evt_v6_b', 'customer.created', '{"id":"evt_v6_b"}', 'routed', now() - interval '2 hours'),
       ('evt_v6_unrouted', 'charge.succeeded', '{"id":"evt_v6_unrouted"}', 'routed', now());
INSERT INTO stripe_webhook_deliveries (event_id, destination, status, attempts, next_attempt_at, locked_until, last_error, delivered_at, dead_at, received_at)
VALUES ('evt_v6_a', 'billing', 'pending', 2, now() + interval '7 minutes', NULL, 'sink down', NULL, NULL, now() - interval '1 hour'),
       ('evt_v6_a', 'crm', 'delivered', 1, now(), NULL, NULL, now() - interval '5 minutes', NULL, now() - interval '1 hour'),
       ('evt_v6_b', 'billing', 'dead', 15, now(), NULL, 'sink answered 500', NULL, now() - interval '1 minute', now() - interval '2 hours'),
       ('evt_v6_b', 'crm', 'pending', 1, now() + interval '1 minute', now() + interval '1 minute', 'timeout', NULL, NULL, now() - interval '2 hours');
INSERT INTO stripe_webhook_delivery_attempts (event_id, destination, ok, error, instance)
VALUES ('evt_v6_a', 'billing', false, 'sink down', 'a'), ('evt_v6_a', 'crm', true, NULL, 'a'), ('evt_v6_b', 'billing', false, 'sink answered 500', 'a')`

// TestUpgradeFromVersion6KeepsEveryRow upgrades a live version-6 schema
// with rows in every state: every ledger row, delivery and attempt is
// kept as it was, the stored events read as webhooks (no source), and the
// reconciler's checkpoint table starts empty.
func TestUpgradeFromVersion6KeepsEveryRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.EmptySchema(t, testenv.DatabaseURL(t))
	if _, err := migrations.ApplyUpTo(ctx, pool, 6); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, version6Rows); err != nil {
		t.Fatal(err)
	}
	const (
		ledger     = `SELECT string_agg(format('%s|%s|%s|%s|%s', event_id, event_type, payload, status, received_at), ';' ORDER BY event_id) FROM stripe_webhook_events`
		deliveries = `SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s|%s|%s|%s', event_id, destination, status, attempts, next_attempt_at, locked_until, last_error, delivered_at, dead_at, received_at), ';' ORDER BY event_id, destination) FROM stripe_webhook_deliveries`
		attempts   = `SELECT string_agg(format('%s|%s|%s|%s', event_id, destination, ok, error), ';' ORDER BY event_id, destination) FROM stripe_webhook_delivery_attempts`
	)
	before := []string{scalar(t, pool, ledger), scalar(t, pool, deliveries), scalar(t, pool, attempts)}
	applied, err := migrations.Apply(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != migrations.Latest()-6 {
		t.Fatalf("applied %v on a version-6 schema", applied)
	}
	for i, q := range []string{ledger, deliveries, attempts} {
		if after := scalar(t, pool, q); after != before[i] {
			t.Fatalf("changed by the upgrade:\nbefore %s\nafter  %s", before[i], after)
		}
	}
	if got := scalar(t, pool, `SELECT count(*)::text FROM stripe_webhook_events WHERE source IS NOT NULL`); got != "0" {
		t.Fatalf("%s events of the previous version have a source; want none (webhooks)", got)
	}
	if got := scalar(t, pool, `SELECT count(*)::text FROM stripe_webhook_reconcile_checkpoints`); got != "0" {
		t.Fatalf("%s checkpoints after the upgrade, want none", got)
	}
	if _, err := pool.Exec(ctx, `UPDATE stripe_webhook_events SET source = 'elsewhere' WHERE event_id = 'evt_v6_a'`); err == nil {
		t.Fatal("a source other than reconcile was accepted")
	}
}

// version7Rows fills a version-7 ledger: webhooks and reconciled events,
// deliveries to two destinations in every state (one under a lease), an
// unrouted event, their history and a reconciler checkpoint.
const version7Rows = `
INSERT INTO stripe_webhook_events (event_id, event_type, livemode, payload, status, source, received_at)
VALUES ('evt_v7_a', 'invoice.paid', true, '{"id":"evt_v7_a"}', 'routed', NULL, now() - interval '1 hour'),
       ('evt_v7_b', 'customer.created', false, '{"id":"evt_v7_b"}', 'routed', 'reconcile', now() - interval '2 hours'),
       ('evt_v7_c', 'invoice.voided', false, '{"id":"evt_v7_c"}', 'routed', 'reconcile', now() - interval '3 hours'),
       ('evt_v7_unrouted', 'charge.succeeded', false, '{"id":"evt_v7_unrouted"}', 'routed', NULL, now());
INSERT INTO stripe_webhook_deliveries (event_id, destination, status, attempts, next_attempt_at, locked_until, last_error, delivered_at, dead_at, received_at)
VALUES ('evt_v7_a', 'billing', 'pending', 2, now() + interval '7 minutes', NULL, 'sink down', NULL, NULL, now() - interval '1 hour'),
       ('evt_v7_a', 'crm', 'delivered', 1, now(), NULL, NULL, now() - interval '5 minutes', NULL, now() - interval '1 hour'),
       ('evt_v7_b', 'billing', 'dead', 15, now(), NULL, 'sink answered 500', NULL, now() - interval '1 minute', now() - interval '2 hours'),
       ('evt_v7_b', 'crm', 'pending', 1, now() + interval '1 minute', now() + interval '1 minute', 'timeout', NULL, NULL, now() - interval '2 hours'),
       ('evt_v7_c', 'billing', 'pending', 0, now() - interval '1 minute', NULL, NULL, NULL, NULL, now() - interval '3 hours');
INSERT INTO stripe_webhook_delivery_attempts (event_id, destination, ok, error, instance)
VALUES ('evt_v7_a', 'billing', false, 'sink down', 'a'), ('evt_v7_a', 'crm', true, NULL, 'a'), ('evt_v7_b', 'billing', false, 'sink answered 500', 'b');
INSERT INTO stripe_webhook_reconcile_checkpoints (listing, listed_through) VALUES ('delivery_success=false', now() - interval '10 minutes')`

// TestUpgradeFromVersion7KeepsEveryRow upgrades a live version-7 schema
// with rows in every state: every ledger row (and its source), delivery,
// attempt and checkpoint is kept as it was, and the destination set of
// record starts empty (no instance has recorded one yet), then takes a
// set.
func TestUpgradeFromVersion7KeepsEveryRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.EmptySchema(t, testenv.DatabaseURL(t))
	if _, err := migrations.ApplyUpTo(ctx, pool, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, version7Rows); err != nil {
		t.Fatal(err)
	}
	const (
		ledger      = `SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s', event_id, event_type, livemode, payload, status, source, received_at), ';' ORDER BY event_id) FROM stripe_webhook_events`
		deliveries  = `SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s|%s|%s|%s', event_id, destination, status, attempts, next_attempt_at, locked_until, last_error, delivered_at, dead_at, received_at), ';' ORDER BY event_id, destination) FROM stripe_webhook_deliveries`
		attempts    = `SELECT string_agg(format('%s|%s|%s|%s|%s|%s', event_id, destination, attempted_at, ok, error, instance), ';' ORDER BY event_id, destination) FROM stripe_webhook_delivery_attempts`
		checkpoints = `SELECT string_agg(format('%s|%s|%s', listing, listed_through, updated_at), ';') FROM stripe_webhook_reconcile_checkpoints`
		identity    = `SELECT string_agg(format('%s|%s', namespace, created_at), ';') FROM oncehook_identity`
	)
	queries := []string{ledger, deliveries, attempts, checkpoints, identity}
	before := make([]string, len(queries))
	for i, q := range queries {
		before[i] = scalar(t, pool, q)
	}
	applied, err := migrations.Apply(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != migrations.Latest()-7 {
		t.Fatalf("applied %v on a version-7 schema", applied)
	}
	for i, q := range queries {
		if after := scalar(t, pool, q); after != before[i] {
			t.Fatalf("changed by the upgrade:\nbefore %s\nafter  %s", before[i], after)
		}
	}
	if got := scalar(t, pool, `SELECT count(*)::text FROM oncehook_instance_destinations`); got != "0" {
		t.Fatalf("%s recorded destinations after the upgrade, want none", got)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO oncehook_instance_destinations (instance, destination, types, livemode, fingerprint)
		VALUES ('host:1', 'billing', '{invoice.*}', true, 'f'), ('host:1', 'crm', '{}', NULL, 'f')`); err != nil {
		t.Fatalf("recording a set after the upgrade: %v", err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO oncehook_instance_destinations (instance, destination, fingerprint) VALUES ('host:1', 'crm', 'f')`); err == nil {
		t.Fatal("an instance recorded one destination twice")
	}
}

// version8Rows is version7Rows and a recorded destination set.
const version8Rows = version7Rows + `;
INSERT INTO oncehook_instance_destinations (instance, destination, types, livemode, fingerprint)
VALUES ('host:1', 'billing', '{invoice.*}', true, 'f'), ('host:1', 'crm', '{}', NULL, 'f')`

// TestUpgradeFromVersion8KeepsEveryRow upgrades a live version-8 schema
// with rows in every state: every ledger row, delivery, attempt,
// checkpoint and recorded destination is kept as it was; every existing
// delivery has no order key (it stays unordered), and the claim still
// takes the due one and leaves the leased one.
func TestUpgradeFromVersion8KeepsEveryRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.EmptySchema(t, testenv.DatabaseURL(t))
	if _, err := migrations.ApplyUpTo(ctx, pool, 8); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, version8Rows); err != nil {
		t.Fatal(err)
	}
	const (
		ledger      = `SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s', event_id, event_type, livemode, payload, status, source, received_at), ';' ORDER BY event_id) FROM stripe_webhook_events`
		deliveries  = `SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s|%s|%s|%s', event_id, destination, status, attempts, next_attempt_at, locked_until, last_error, delivered_at, dead_at, received_at), ';' ORDER BY event_id, destination) FROM stripe_webhook_deliveries`
		attempts    = `SELECT string_agg(format('%s|%s|%s|%s|%s|%s', event_id, destination, attempted_at, ok, error, instance), ';' ORDER BY event_id, destination) FROM stripe_webhook_delivery_attempts`
		checkpoints = `SELECT string_agg(format('%s|%s|%s', listing, listed_through, updated_at), ';') FROM stripe_webhook_reconcile_checkpoints`
		instances   = `SELECT string_agg(format('%s|%s|%s|%s|%s|%s', instance, destination, types, livemode, fingerprint, heartbeat_at), ';' ORDER BY destination) FROM oncehook_instance_destinations`
	)
	queries := []string{ledger, deliveries, attempts, checkpoints, instances}
	before := make([]string, len(queries))
	for i, q := range queries {
		before[i] = scalar(t, pool, q)
	}
	applied, err := migrations.Apply(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != migrations.Latest()-8 {
		t.Fatalf("applied %v on a version-8 schema", applied)
	}
	for i, q := range queries {
		if after := scalar(t, pool, q); after != before[i] {
			t.Fatalf("changed by the upgrade:\nbefore %s\nafter  %s", before[i], after)
		}
	}
	if got := scalar(t, pool, `SELECT count(*)::text FROM stripe_webhook_deliveries WHERE order_key IS NOT NULL OR order_created IS NOT NULL`); got != "0" {
		t.Fatalf("%s deliveries of the previous version have an order key or created time; want none (unordered)", got)
	}
	st := store.New(pool)
	for _, dest := range []string{"billing", "crm"} {
		got, err := st.Claim(ctx, store.ClaimParams{Destination: dest, Limit: 10, RoomBytes: 1 << 20, Lease: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"billing": "evt_v7_c", "crm": ""}[dest]
		if (want == "" && len(got) != 0) || (want != "" && (len(got) != 1 || got[0].Event.ID != want || got[0].Event.OrderKey != "")) {
			t.Fatalf("claim of %s after the upgrade: %+v, want %q (the due delivery, unordered)", dest, got, want)
		}
	}
}
