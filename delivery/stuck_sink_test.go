package delivery_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/faultproxy"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/sink"
)

// TestStalledSinkEndsWithinTimeoutAndShutdown: a JSON-lines sink writing to
// a pipe nobody reads (a stalled stdout, a hung disk) blocks in Write and
// cannot be cancelled. Each delivery must still end, as a failed attempt,
// within DELIVERY_TIMEOUT, and Stop within its deadline.
func TestStalledSinkEndsWithinTimeoutAndShutdown(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	evs := stored(t, pool, 3)
	pr, pw := io.Pipe()
	t.Cleanup(func() { pr.Close() })
	cfg := fastRetries
	cfg.Pool, cfg.Sink, cfg.Workers, cfg.DeliveryTimeout = pool, sink.NewWriter(pw), 2, 500*time.Millisecond
	cfg.RetryBase, cfg.RetryMax = time.Minute, time.Hour // one attempt each in this test
	d, err := delivery.NewDispatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, ev := range evs {
		d.Enqueue(ev, leaseOf(t, pool, ev.ID))
	}
	for _, ev := range evs[:2] {
		r := waitRow(t, pool, ev.ID, func(r row) bool { return r.attempts == 1 })
		if r.status != "pending" || !strings.Contains(r.lastError, "deadline exceeded") {
			t.Errorf("%s: %+v, want a failed attempt naming the timeout", ev.ID, r)
		}
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("the first attempts took %s with a 500ms DELIVERY_TIMEOUT", el)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	stopped := make(chan error, 1)
	start = time.Now()
	go func() { stopped <- d.Stop(ctx) }()
	select {
	case <-stopped:
		if el := time.Since(start); el > 1500*time.Millisecond {
			t.Errorf("Stop took %s with a 1s deadline", el)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop is still blocked 5s after its 1s deadline")
	}
}

// TestStopBoundedWhilePostgresHangs: with Postgres answering nothing, the
// sweeper's claim and the last result writes must still end by Stop's
// deadline.
func TestStopBoundedWhilePostgresHangs(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	proxy := faultproxy.New(t, "postgres", faultproxy.Upstream(t, testenv.DatabaseURL(t)))
	cfg := pool.Config().Copy()
	viaCfg, err := pgxpool.ParseConfig(faultproxy.Via(t, testenv.DatabaseURL(t), proxy))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Host, cfg.ConnConfig.Port = viaCfg.ConnConfig.Host, viaCfg.ConnConfig.Port
	hung, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hung.Close)
	evs := stored(t, pool, 3)
	dc := fastRetries
	dc.Pool, dc.SweepInterval = hung, 5*time.Millisecond
	dc.Sink = funcSink(func(context.Context, *event.Event) error { return nil })
	d, err := delivery.NewDispatcher(dc)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		d.Enqueue(ev, leaseOf(t, pool, ev.ID))
	}
	proxy.Latency(t, time.Hour) // every statement from now on hangs
	// Intended fault window: the sweeper (every 5ms) and the result writes
	// run into the hang, in a query or in connecting, before Stop. No signal
	// says a call is stuck rather than slow.
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	_ = d.Stop(ctx)
	if el := time.Since(start); el > 1500*time.Millisecond {
		t.Fatalf("Stop took %s with a 1s deadline while Postgres hangs", el)
	}
}
