package migrations_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/migrations"
	"github.com/oncehook/oncehook/store"
)

// version9Rows is version8Rows with an ordered delivery.
const version9Rows = version8Rows + `;
UPDATE stripe_webhook_deliveries SET order_key = 'cus_1', order_created = now() - interval '3 hours'
WHERE event_id = 'evt_v7_c' AND destination = 'billing'`

// version9Queries read every row of a version-9 schema (the ledger, the
// deliveries with their order keys, the history, the checkpoints and the
// recorded destinations), each as one string, to compare before and after
// an upgrade.
var version9Queries = []string{
	`SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s', event_id, event_type, livemode, payload, status, source, received_at), ';' ORDER BY event_id) FROM stripe_webhook_events`,
	`SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s', event_id, destination, status, attempts, next_attempt_at, locked_until, last_error, delivered_at, dead_at, received_at, order_key, order_created), ';' ORDER BY event_id, destination) FROM stripe_webhook_deliveries`,
	`SELECT string_agg(format('%s|%s|%s|%s|%s|%s', event_id, destination, attempted_at, ok, error, instance), ';' ORDER BY event_id, destination) FROM stripe_webhook_delivery_attempts`,
	`SELECT string_agg(format('%s|%s|%s', listing, listed_through, updated_at), ';') FROM stripe_webhook_reconcile_checkpoints`,
	`SELECT string_agg(format('%s|%s|%s|%s|%s|%s', instance, destination, types, livemode, fingerprint, heartbeat_at), ';' ORDER BY destination) FROM oncehook_instance_destinations`,
}

// TestUpgradeFromVersion9KeepsEveryRow upgrades a live version-9 schema
// with rows in every state: every ledger row, delivery (one ordered),
// attempt, checkpoint and recorded destination is kept as it was, and no
// timeline nor failover is recorded. Then the first observation of a
// timeline records it and is no failover; a higher timeline is one
// failover, recorded once, whose window starts at the newest event of the
// ledger less the overlap; a lower one (a restore) is recorded, no
// failover.
func TestUpgradeFromVersion9KeepsEveryRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.EmptySchema(t, testenv.DatabaseURL(t))
	if _, err := migrations.ApplyUpTo(ctx, pool, 9); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, version9Rows); err != nil {
		t.Fatal(err)
	}
	queries := version9Queries
	before := make([]string, len(queries))
	for i, q := range queries {
		before[i] = scalar(t, pool, q)
	}
	applied, err := migrations.Apply(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != migrations.Latest()-9 {
		t.Fatalf("applied %v on a version-9 schema", applied)
	}
	for i, q := range queries {
		if after := scalar(t, pool, q); after != before[i] {
			t.Fatalf("changed by the upgrade:\nbefore %s\nafter  %s", before[i], after)
		}
	}
	if got := scalar(t, pool, `SELECT (SELECT count(*) FROM oncehook_timeline) + (SELECT count(*) FROM oncehook_failovers) || ''`); got != "0" {
		t.Fatalf("%s timeline and failover rows after the upgrade, want none", got)
	}

	w := store.FailoverWindow{Overlap: time.Hour, Margin: time.Minute}
	observe := func(tl int64, want bool) store.Failover {
		t.Helper()
		f, recorded, err := store.ObserveTimeline(ctx, pool, tl, w)
		if err != nil || recorded != want {
			t.Fatalf("observing timeline %d: recorded %v, %v; want recorded %v", tl, recorded, err, want)
		}
		if got := scalar(t, pool, `SELECT timeline || '' FROM oncehook_timeline`); got != "" && got != strconv.FormatInt(tl, 10) {
			t.Fatalf("timeline recorded %s after observing %d", got, tl)
		}
		return f
	}
	observe(2, false) // the first: no failover
	observe(2, false)
	f := observe(4, true)
	newest, err := time.Parse(time.RFC3339Nano, scalar(t, pool, `SELECT to_json(max(received_at)) #>> '{}' FROM stripe_webhook_events`))
	if err != nil {
		t.Fatal(err)
	}
	if f.OldTimeline != 2 || f.NewTimeline != 4 || !f.WindowStart.Equal(newest.Add(-time.Hour)) || !f.ListedThrough.Equal(f.WindowStart) ||
		!f.WindowEnd.Equal(f.DetectedAt.Add(time.Minute)) {
		t.Fatalf("failover %+v; want 2 -> 4, from %s less 1h to its detection plus 1m", f, newest)
	}
	observe(4, false) // another instance, later: recorded already
	observe(1, false) // restored into a new cluster
	st := store.New(pool)
	if fs, err := st.Failovers(ctx); err != nil || len(fs) != 1 {
		t.Fatalf("failovers %+v, %v; want the one", fs, err)
	}
	if ok, err := st.SaveFailoverProgress(ctx, 4, f.WindowEnd, 3); err != nil || !ok {
		t.Fatalf("saving progress: %v %v", ok, err)
	}
	healed, err := st.MarkFailoverHealed(ctx, 4)
	if err != nil || healed.Recovered != 3 || healed.HealedAt.IsZero() {
		t.Fatalf("healed %+v, %v", healed, err)
	}
	if todo, err := st.UnhealedFailovers(ctx); err != nil || len(todo) != 0 {
		t.Fatalf("unhealed after the heal: %+v, %v", todo, err)
	}
}
