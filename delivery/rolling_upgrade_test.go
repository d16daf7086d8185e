package delivery_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/migrations"
)

func pick(m map[string]time.Time, ids ...string) map[string]time.Time {
	out := map[string]time.Time{}
	for _, id := range ids {
		l, ok := m[id]
		if !ok {
			panic("no lease for " + id)
		}
		out[id] = l
	}
	return out
}

// TestRollingUpgradeFromThePreviousVersion runs the README's rolling
// upgrade: instances of the previous version (its statements, unchanged)
// keep storing, sweeping and delivering while a new instance migrates the
// database and serves beside them, then the old ones stop. Every event is
// delivered exactly once across both versions, a row in flight at the
// upgrade is finished by its old instance, the old sweeper never takes a
// new row, duplicates are recognised across versions, a dead row stays
// dead, and in the end every row is a delivery of destination default.
func TestRollingUpgradeFromThePreviousVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.EmptySchema(t, testenv.DatabaseURL(t))
	if _, err := migrations.ApplyUpTo(ctx, pool, 5); err != nil {
		t.Fatal(err)
	}
	old := newPreviousInstance(t, pool, 2*time.Second)

	// Before the upgrade, the previous version alone.
	l := old.store("evt_ru_delivered", "evt_ru_failed", "evt_ru_dead", "evt_ru_inflight", "evt_ru_orphan")
	old.deliver(pick(l, "evt_ru_delivered"))
	old.fail(pick(l, "evt_ru_failed"), 15, 300*time.Millisecond)
	old.fail(pick(l, "evt_ru_dead"), 1, time.Second)
	if _, err := pool.Exec(ctx, `UPDATE stripe_webhook_events SET locked_until = now() - interval '1 second',
		next_attempt_at = now() - interval '1 second' WHERE event_id = 'evt_ru_orphan'`); err != nil {
		t.Fatal(err) // its instance died and its lease ran out
	}

	// A new instance starts: it migrates, then serves beside the old one.
	if _, err := migrations.Apply(ctx, pool); err != nil {
		t.Fatal(err)
	}
	out := harness.NewRecordingSink()
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Sink: out, Delivery: fastRetries})

	// The old instance finishes the delivery it had under way.
	if n := old.deliver(pick(l, "evt_ru_inflight")); n != 1 {
		t.Fatal("the previous version's result for a row it held was not applied")
	}
	// Both versions take events; a copy is recognised whichever stored it.
	for _, id := range []string{"evt_ru_new_1", "evt_ru_new_2"} {
		if r := harness.Post(t, in.URL, harness.EventBody(id, "invoice.paid")); r.Code != 200 || !strings.Contains(r.Body, "accepted") {
			t.Fatalf("%s: %d %s", id, r.Code, r.Body)
		}
	}
	if r := harness.Post(t, in.URL, harness.EventBody("evt_ru_delivered", "invoice.paid")); !strings.Contains(r.Body, "duplicate") {
		t.Fatalf("a copy of an event the old version stored: %d %s", r.Code, r.Body)
	}
	l2 := old.store("evt_ru_old_new", "evt_ru_left", "evt_ru_new_1")
	if _, ok := l2["evt_ru_new_1"]; ok || len(l2) != 2 {
		t.Fatalf("the old version stored %v: a copy of an event the new one stored must be a duplicate", l2)
	}
	old.deliver(pick(l2, "evt_ru_old_new"))
	// The old sweeper takes only rows of its own version; what it takes, it delivers.
	claimed := old.claim()
	for id := range claimed {
		if id == "evt_ru_new_1" || id == "evt_ru_new_2" {
			t.Fatalf("the old sweeper took %s, a row of the new version", id)
		}
	}
	old.deliver(claimed)
	// The old instance stops with evt_ru_left under its lease: the new one
	// adopts it when the lease ends and delivers it.

	want := []string{"evt_ru_delivered", "evt_ru_failed", "evt_ru_inflight", "evt_ru_orphan", "evt_ru_new_1",
		"evt_ru_new_2", "evt_ru_old_new", "evt_ru_left"}
	var n int
	eventually.Require(t, 20*time.Second, "every event delivered after the upgrade", func() bool {
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM stripe_webhook_deliveries
			WHERE destination = 'default' AND status = 'delivered' AND event_id = ANY($1)`, want).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == len(want)
	}, func() string { return fmt.Sprintf("%d of %d events delivered", n, len(want)) })
	both := maps.Clone(old.delivered)
	for id, n := range out.Counts() {
		both[id] += n
	}
	for _, id := range want {
		if both[id] != 1 {
			t.Errorf("%s delivered %d times across both versions (old %d, new %d), want once", id, both[id], old.delivered[id], out.Counts()[id])
		}
	}
	if both["evt_ru_dead"] != 0 {
		t.Errorf("the dead event was delivered %d times", both["evt_ru_dead"])
	}
	var status string
	var attempts int
	if err := pool.QueryRow(ctx, `SELECT status, attempts FROM stripe_webhook_deliveries WHERE event_id = 'evt_ru_dead' AND destination = 'default'`).
		Scan(&status, &attempts); err != nil || status != "dead" || attempts != 1 {
		t.Fatalf("the dead event: %s after %d attempts (%v); want dead after 1", status, attempts, err)
	}
	var legacy int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM stripe_webhook_events WHERE status <> 'routed'`).Scan(&legacy); err != nil || legacy != 0 {
		t.Fatalf("%d rows of the previous version left unadopted (%v)", legacy, err)
	}
	t.Logf("old version delivered %v; new version delivered %v", old.delivered, out.Counts())
}
