package delivery_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/store"
)

// funcSink is a Sink made of a function.
type funcSink func(ctx context.Context, ev *event.Event) error

func (f funcSink) Deliver(ctx context.Context, ev *event.Event) error { return f(ctx, ev) }
func (f funcSink) Close() error                                       { return nil }

// stored inserts events as the intake does (leased to this instance for a
// minute) and returns them.
func stored(t *testing.T, pool *pgxpool.Pool, n int) []*event.Event {
	t.Helper()
	var evs []*event.Event
	for i := range n {
		id := fmt.Sprintf("evt_disp_%03d", i)
		_, err := pool.Exec(context.Background(),
			`WITH e AS (INSERT INTO stripe_webhook_events (event_id, event_type, payload, status)
				VALUES ($1, 'invoice.paid', $2, 'routed') RETURNING event_id)
			 INSERT INTO stripe_webhook_deliveries (event_id, destination, locked_until, next_attempt_at)
			 SELECT event_id, 'default', now() + interval '1 minute', now() + interval '1 minute' FROM e`,
			id, []byte(`{"id":"`+id+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, &event.Event{ID: id, Type: "invoice.paid", Payload: []byte(`{"id":"` + id + `"}`)})
	}
	return evs
}

// dispatchAll starts a Dispatcher with cfg, stopped when the test ends,
// and hands it evs as the intake would.
func dispatchAll(t *testing.T, cfg delivery.DispatcherConfig, evs []*event.Event) *delivery.Dispatcher {
	t.Helper()
	d, err := delivery.NewDispatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	for _, ev := range evs {
		d.Enqueue(ev, leaseOf(t, cfg.Pool, ev.ID))
	}
	return d
}

// leaseOf is the lease the intake would hand over with a stored event.
func leaseOf(t *testing.T, pool *pgxpool.Pool, id string) store.Lease {
	t.Helper()
	l := store.Lease{Start: time.Now(), Length: time.Minute} // as stored() leases them
	if err := pool.QueryRow(context.Background(), `SELECT locked_until FROM stripe_webhook_deliveries WHERE event_id = $1`, id).Scan(&l.Until); err != nil {
		t.Fatal(err)
	}
	return l
}

type row struct {
	status    string
	attempts  int
	lastError string
	retryIn   time.Duration
}

func readRow(t *testing.T, pool *pgxpool.Pool, id string) row {
	t.Helper()
	var r row
	var lastErr *string
	var secs float64
	err := pool.QueryRow(context.Background(), `SELECT status, attempts, last_error, extract(epoch FROM next_attempt_at - now())
		FROM stripe_webhook_deliveries WHERE event_id = $1`, id).Scan(&r.status, &r.attempts, &lastErr, &secs)
	if err != nil {
		t.Fatal(err)
	}
	if lastErr != nil {
		r.lastError = *lastErr
	}
	r.retryIn = time.Duration(secs * float64(time.Second))
	return r
}

func waitRow(t *testing.T, pool *pgxpool.Pool, id string, cond func(row) bool) row {
	t.Helper()
	var r row
	eventually.Require(t, 5*time.Second, id+"'s row to meet the condition", func() bool {
		r = readRow(t, pool, id)
		return cond(r)
	}, func() string { return fmt.Sprintf("row %+v", r) })
	return r
}

func TestDispatcherMarksDeliveredInBatches(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	evs := stored(t, pool, 100)
	var mu sync.Mutex
	got := map[string]int{}
	d, err := delivery.NewDispatcher(delivery.DispatcherConfig{Pool: pool, Workers: 4, Sink: funcSink(func(_ context.Context, ev *event.Event) error {
		mu.Lock()
		got[ev.ID]++
		mu.Unlock()
		return nil
	})})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if !d.Enqueue(ev, leaseOf(t, pool, ev.ID)) {
			t.Fatal("Enqueue refused with room in the queue")
		}
	}
	if err := d.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if got[ev.ID] != 1 {
			t.Errorf("%s delivered %d times", ev.ID, got[ev.ID])
		}
		if r := readRow(t, pool, ev.ID); r.status != "delivered" || r.attempts != 1 {
			t.Errorf("%s: %+v, want delivered after 1 attempt", ev.ID, r)
		}
	}
}

func TestDispatcherRecordsFailure(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	evs := stored(t, pool, 1)
	d, err := delivery.NewDispatcher(delivery.DispatcherConfig{Pool: pool, RetryBase: time.Minute, Sink: funcSink(func(context.Context, *event.Event) error {
		return errors.New("downstream said 502")
	})})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d.Stop(context.Background())
	d.Enqueue(evs[0], leaseOf(t, pool, evs[0].ID))
	r := waitRow(t, pool, evs[0].ID, func(r row) bool { return r.attempts == 1 })
	if r.status != "pending" || !strings.Contains(r.lastError, "502") || r.retryIn < 29*time.Second || r.retryIn > 61*time.Second {
		t.Fatalf("after a failed delivery: %+v, want pending with the error, due in 30-60s (1m less jitter)", r)
	}
}

func TestDispatcherQueueIsBounded(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	evs := stored(t, pool, 4)
	release := make(chan struct{})
	d, err := delivery.NewDispatcher(delivery.DispatcherConfig{Pool: pool, Workers: 1, QueueSize: 2, Sink: funcSink(func(ctx context.Context, _ *event.Event) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.Enqueue(evs[0], leaseOf(t, pool, evs[0].ID)) // taken by the one worker, which blocks
	eventually.Require(t, 5*time.Second, "the worker to take the first event", func() bool { return d.QueueDepth() == 0 })
	if !d.Enqueue(evs[1], leaseOf(t, pool, evs[1].ID)) || !d.Enqueue(evs[2], leaseOf(t, pool, evs[2].ID)) {
		t.Fatal("Enqueue refused with room in the queue")
	}
	if d.Enqueue(evs[3], leaseOf(t, pool, evs[3].ID)) {
		t.Fatal("Enqueue accepted past QueueSize")
	}
	close(release)
	if err := d.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := readRow(t, pool, evs[3].ID); r.status != "pending" {
		t.Fatalf("the refused event: %+v, want it still pending", r)
	}
}

func TestDispatcherStopBoundedByContext(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	evs := stored(t, pool, 3)
	d, err := delivery.NewDispatcher(delivery.DispatcherConfig{Pool: pool, Workers: 1, Sink: funcSink(func(ctx context.Context, _ *event.Event) error {
		<-ctx.Done() // a sink that hangs
		return ctx.Err()
	})})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		d.Enqueue(ev, leaseOf(t, pool, ev.ID))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := d.Stop(ctx); err == nil {
		t.Fatal("Stop with a hanging sink: want an error saying events stay pending")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Stop took %s past its deadline", el)
	}
	for _, ev := range evs {
		// Aborted by Stop, not failed by the sink: no attempt is counted, so
		// a shutdown never pushes an event towards dead.
		if r := readRow(t, pool, ev.ID); r.status != "pending" || r.attempts != 0 {
			t.Errorf("%s: %+v, want pending with no attempt counted", ev.ID, r)
		}
	}
	if d.Enqueue(evs[0], leaseOf(t, pool, evs[0].ID)) {
		t.Fatal("Enqueue after Stop: want false")
	}
}
