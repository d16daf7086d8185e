package delivery_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/store"
)

// TestLateResultDoesNotBreakAnotherLease: instance A's delivery outlives
// its lease and instance B takes the row over. A's late failure (its last
// allowed attempt, so "dead") must neither clear B's lease nor kill the
// row; B's success then applies. A's result is counted as stale.
func TestLateResultDoesNotBreakAnotherLease(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ev := stored(t, pool, 1)[0]
	leaseA := leaseOf(t, pool, ev.ID)
	started, release := make(chan struct{}), make(chan struct{})
	m := metrics.New()
	a, err := delivery.NewDispatcher(delivery.DispatcherConfig{Pool: pool, MaxAttempts: 1, Metrics: m, Instance: "a",
		Sink: funcSink(func(context.Context, *event.Event) error {
			close(started)
			<-release
			return errors.New("sink answered 503")
		})})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.Enqueue(ev, leaseA)
	<-started

	// A's lease ran out; B's sweeper claimed the row with a lease of its own.
	var leaseB time.Time
	if err := pool.QueryRow(context.Background(), `UPDATE stripe_webhook_deliveries
		SET locked_until = now() + interval '1 minute', next_attempt_at = now() + interval '1 minute'
		WHERE event_id = $1 RETURNING locked_until`, ev.ID).Scan(&leaseB); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := a.Stop(context.Background()); err != nil { // writes A's last results
		t.Fatal(err)
	}
	var status string
	var attempts int
	var locked *time.Time
	if err := pool.QueryRow(context.Background(), `SELECT status, attempts, locked_until FROM stripe_webhook_deliveries WHERE event_id = $1`, ev.ID).
		Scan(&status, &attempts, &locked); err != nil {
		t.Fatal(err)
	}
	if status != "pending" || attempts != 0 || locked == nil || !locked.Equal(leaseB) {
		t.Fatalf("after A's late failure: %s, %d attempts, locked until %v; want B's row untouched (pending, 0, %v)", status, attempts, locked, leaseB)
	}
	if n := counterValue(t, m, "oncehook_deliveries_total", "stale"); n != 1 {
		t.Errorf("stale results counted: %v, want 1", n)
	}

	b, err := delivery.NewDispatcher(delivery.DispatcherConfig{Pool: pool, Instance: "b",
		Sink: funcSink(func(context.Context, *event.Event) error { return nil })})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.Enqueue(ev, store.Lease{Start: time.Now(), Until: leaseB, Length: time.Minute})
	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := readRow(t, pool, ev.ID); r.status != "delivered" || r.attempts != 1 {
		t.Fatalf("after B's success: %+v, want delivered", r)
	}
}

// counterValue reads one labelled counter from m's registry.
func counterValue(t *testing.T, m *metrics.Metrics, name, label string) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetValue() == label {
					return metric.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s}", name, label)
	return 0
}
