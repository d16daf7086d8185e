package delivery_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/testenv"
)

// TestQueueIsBoundedInBytes: the hand-off holds at most QueueMaxBytes of
// payloads, counting deliveries under way; what does not fit stays pending
// in Postgres. The sweeper claims no more than fits either, but for one
// event past the room (so that a large event is never stuck behind small
// ones), and an event larger than the whole bound still goes through alone.
func TestQueueIsBoundedInBytes(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	const size, bound = 3000, 10_000
	var evs []*event.Event
	for i := range 40 {
		id := fmt.Sprintf("evt_bytes_%02d", i)
		payload := []byte(`{"id":"` + id + `","pad":"` + strings.Repeat("x", size-30) + `"}`)
		if _, err := pool.Exec(context.Background(), `WITH e AS (INSERT INTO stripe_webhook_events (event_id, event_type, payload, status)
				VALUES ($1, 'invoice.paid', $2, 'routed') RETURNING event_id)
			INSERT INTO stripe_webhook_deliveries (event_id, destination, locked_until, next_attempt_at)
			SELECT event_id, 'default', now() + interval '1 minute', now() + interval '1 minute' FROM e`, id, payload); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, &event.Event{ID: id, Type: "invoice.paid", Payload: payload})
	}
	release := make(chan struct{})
	cfg := fastRetries
	cfg.Pool, cfg.Workers, cfg.QueueSize, cfg.QueueMaxBytes = pool, 2, 1000, bound
	cfg.Sink = funcSink(func(ctx context.Context, _ *event.Event) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	d, err := delivery.NewDispatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d.Stop(context.Background())
	accepted := 0
	for _, ev := range evs[:20] {
		if d.Enqueue(ev, leaseOf(t, pool, ev.ID)) {
			accepted++
		}
	}
	if want := bound / len(evs[0].Payload); accepted != want || d.QueueBytes() > bound {
		t.Fatalf("accepted %d events holding %d bytes; want %d within %d bytes", accepted, d.QueueBytes(), want, bound)
	}

	// The other 20 rows are due: the sweeper claims into the 1,000 bytes
	// left, and may pass them by one event, no more.
	if _, err := pool.Exec(context.Background(), `UPDATE stripe_webhook_deliveries SET locked_until = NULL, next_attempt_at = now()
		WHERE event_id >= 'evt_bytes_20'`); err != nil {
		t.Fatal(err)
	}
	// Intended fault window (a negative check): many sweeps at 20ms may try
	// to overfill the queue. No signal can stand in: with no room left the
	// sweeper does not even query, so its sweeps cannot be counted.
	time.Sleep(300 * time.Millisecond)
	var claimed int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM stripe_webhook_deliveries
		WHERE event_id >= 'evt_bytes_20' AND locked_until > now()`).Scan(&claimed); err != nil {
		t.Fatal(err)
	}
	if claimed > 1 || d.QueueBytes() > bound+int64(size) {
		t.Fatalf("the sweeper claimed %d rows into a queue with room for none (%d bytes held, bound %d)", claimed, d.QueueBytes(), bound)
	}
	close(release)
	eventually.Require(t, 5*time.Second, "the swept rows delivered", func() bool {
		var left int
		_ = pool.QueryRow(context.Background(), `SELECT count(*) FROM stripe_webhook_deliveries WHERE event_id >= 'evt_bytes_20' AND status = 'pending'`).Scan(&left)
		return left == 0
	})

	big := &event.Event{ID: "evt_bytes_big", Type: "invoice.paid", Payload: []byte(`{"pad":"` + strings.Repeat("y", 2*bound) + `"}`)}
	if _, err := pool.Exec(context.Background(), `WITH e AS (INSERT INTO stripe_webhook_events (event_id, event_type, payload, status)
			VALUES ($1, 'invoice.paid', $2, 'routed') RETURNING event_id)
		INSERT INTO stripe_webhook_deliveries (event_id, destination, locked_until)
		SELECT event_id, 'default', now() + interval '1 minute' FROM e`, big.ID, big.Payload); err != nil {
		t.Fatal(err)
	}
	eventually.Require(t, 5*time.Second, "an empty queue", func() bool { return d.QueueBytes() == 0 })
	if !d.Enqueue(big, leaseOf(t, pool, big.ID)) {
		t.Fatal("an event larger than QueueMaxBytes was refused by an empty queue: it would never be delivered")
	}
}
