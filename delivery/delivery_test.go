package delivery_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/admin"
	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/store"
)

// fastRetries makes backoff and sweeping quick enough for a test.
var fastRetries = delivery.DispatcherConfig{
	RetryBase: 10 * time.Millisecond, RetryMax: 200 * time.Millisecond,
	SweepInterval: 20 * time.Millisecond, MaxAttempts: 50,
}

func postMany(t *testing.T, urls []string, prefix string, n int) []string {
	t.Helper()
	var ids []string
	var wg sync.WaitGroup
	for i := range n {
		id := fmt.Sprintf("%s_%03d", prefix, i)
		ids = append(ids, id)
		wg.Go(func() {
			if resp := harness.Post(t, urls[i%len(urls)], harness.EventBody(id, "invoice.paid")); resp.Code != 200 {
				t.Errorf("%s: %d %s", id, resp.Code, resp.Body)
			}
		})
	}
	wg.Wait()
	return ids
}

func statusCounts(t *testing.T, pool *pgxpool.Pool) map[string]int {
	t.Helper()
	rows, err := pool.Query(context.Background(), "SELECT status, count(*) FROM stripe_webhook_deliveries GROUP BY status")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			t.Fatal(err)
		}
		out[s] = n
	}
	return out
}

func waitAllDelivered(t *testing.T, pool *pgxpool.Pool, n int, timeout time.Duration) {
	t.Helper()
	var c map[string]int
	eventually.Require(t, timeout, fmt.Sprintf("%d delivered", n), func() bool {
		c = statusCounts(t, pool)
		return c["delivered"] == n
	}, func() string { return fmt.Sprint(c) })
}

func exactlyOnce(t *testing.T, out *harness.RecordingSink, ids []string) {
	t.Helper()
	c := out.Counts()
	for _, id := range ids {
		if c[id] != 1 {
			t.Errorf("%s delivered %d times, want 1", id, c[id])
		}
	}
	if len(c) != len(ids) {
		t.Errorf("sink got %d ids, want %d", len(c), len(ids))
	}
}

func TestFlakySinkGetsEverythingDelivered(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	out := harness.NewRecordingSink()
	var failures atomic.Int64
	out.Fail = func(*event.Event) error {
		if rand.IntN(10) < 3 {
			failures.Add(1)
			return harness.ErrSinkDown
		}
		return nil
	}
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Sink: out, Delivery: fastRetries})
	ids := postMany(t, []string{in.URL}, "evt_flaky", 200)
	start := time.Now()
	waitAllDelivered(t, pool, len(ids), 20*time.Second)
	t.Logf("all delivered %s after the last response", time.Since(start))
	exactlyOnce(t, out, ids)
	if failures.Load() == 0 {
		t.Fatal("the sink never failed: the test proved nothing")
	}
	t.Logf("%d failed calls retried", failures.Load())
}

// downSink is a sink that fails with err until down is cleared.
func downSink(err error) (*harness.RecordingSink, *atomic.Bool) {
	out := harness.NewRecordingSink()
	down := new(atomic.Bool)
	down.Store(true)
	out.Fail = func(*event.Event) error {
		if down.Load() {
			return err
		}
		return nil
	}
	return out, down
}

func TestSinkDownThenBackWithBackoff(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	out, down := downSink(harness.ErrSinkDown)
	cfg := fastRetries
	cfg.RetryBase, cfg.RetryMax = 20*time.Millisecond, 2*time.Second
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Sink: out, Delivery: cfg})
	ids := postMany(t, []string{in.URL}, "evt_outage", 20)

	// While down: attempts climb and each next attempt is further away.
	var rows []admin.EventRow
	eventually.Require(t, 10*time.Second, "attempts to climb while the sink is down", func() bool {
		var err error
		rows, err = listDeliveries(context.Background(), pool, admin.ListParams{Status: store.StatusPending})
		if err != nil {
			t.Fatal(err)
		}
		least := 0
		for i, r := range rows {
			if i == 0 || r.Attempts < least {
				least = r.Attempts
			}
		}
		return len(rows) == 20 && least >= 5
	}, func() string { return fmt.Sprintf("%+v", rows) })
	shown, err := store.New(pool).ShowEvent(context.Background(), ids[0])
	if err != nil {
		t.Fatal(err)
	}
	history := shown.History
	if len(history) < 5 {
		t.Fatalf("history has %d attempts, want at least 5", len(history))
	}
	gap := func(i int) time.Duration { return history[i+1].At.Sub(history[i].At) }
	// Delays are base·2^k less up to half: the gap after attempt 4 is at least
	// 20ms·8/2 = 80ms, more than the longest possible gap after attempt 1
	// (20ms plus sweeping).
	if gap(3) <= gap(0) {
		t.Errorf("no backoff: gap after attempt 1 %s, after attempt 4 %s", gap(0), gap(3))
	}
	for _, a := range history {
		if a.OK || a.Error == "" {
			t.Fatalf("a failed attempt recorded as %+v", a)
		}
	}

	down.Store(false)
	waitAllDelivered(t, pool, len(ids), 20*time.Second)
	exactlyOnce(t, out, ids)
}

func TestDeadLetterAndReplay(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	out, down := downSink(errors.New("downstream answered 500"))
	cfg := fastRetries
	cfg.MaxAttempts = 3
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Sink: out, Delivery: cfg})
	ids := postMany(t, []string{in.URL}, "evt_dead", 3)

	eventually.Require(t, 10*time.Second, "3 dead after max attempts", func() bool { return statusCounts(t, pool)["dead"] == 3 },
		func() string { return fmt.Sprint(statusCounts(t, pool)) })
	dead, err := listDeliveries(context.Background(), pool, admin.ListParams{Status: store.StatusDead})
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 3 || dead[0].Attempts != 3 || dead[0].LastError != "downstream answered 500" {
		t.Fatalf("dead list: %+v", dead)
	}

	down.Store(false)
	found, err := store.New(pool).ReplayIDs(context.Background(), []string{ids[0], "evt_unknown"}, store.ReplayIDsOptions{})
	if err != nil || len(found) != 1 || found[0] != ids[0] {
		t.Fatalf("Replay: %v, %v; want only %s found", found, err, ids[0])
	}
	n, err := replayStatus(context.Background(), pool, store.StatusDead, "")
	if err != nil || n != 2 {
		t.Fatalf("ReplayStatus: %d, %v; want 2", n, err)
	}
	waitAllDelivered(t, pool, 3, 10*time.Second)
	exactlyOnce(t, out, ids)
}

func TestOrphanedEventsAreSweptOnce(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	// 150 events an instance stored and then died with: their leases ended.
	var ids []string
	for i := range 150 {
		id := fmt.Sprintf("evt_orphan_%03d", i)
		ids = append(ids, id)
		if _, err := pool.Exec(context.Background(), `WITH e AS (INSERT INTO stripe_webhook_events (event_id, event_type, payload, status)
				VALUES ($1, 'invoice.paid', '{}', 'routed') RETURNING event_id)
			INSERT INTO stripe_webhook_deliveries (event_id, destination, locked_until, next_attempt_at)
			SELECT event_id, 'default', now() - interval '1 second', now() - interval '1 second' FROM e`, id); err != nil {
			t.Fatal(err)
		}
	}
	// Two live instances sweep at once; each event reaches the sink once.
	out := harness.NewRecordingSink()
	cfg := fastRetries
	cfg.SweepBatch = 7
	watched, sweeps := watchSweeps(t, pool)
	var ins []*harness.Instance
	for range 2 {
		ins = append(ins, harness.StartInstance(t, harness.InstanceConfig{Pool: watched, Sink: out, Delivery: cfg}))
	}
	waitAllDelivered(t, pool, len(ids), 20*time.Second)
	sweeps.settle(t, []string{route.DefaultName}, ins...) // room for a wrong second delivery
	exactlyOnce(t, out, ids)
}

func TestTwoInstancesUnderLoadDeliverOnce(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	out := harness.NewRecordingSink()
	watched, sweeps := watchSweeps(t, pool)
	var urls []string
	var ins []*harness.Instance
	for range 2 {
		in := harness.StartInstance(t, harness.InstanceConfig{Pool: watched, Redis: rdb, KeyPrefix: prefix, Sink: out, Delivery: fastRetries})
		ins, urls = append(ins, in), append(urls, in.URL)
	}
	// Each event twice, once per instance.
	ids := postMany(t, urls, "evt_two", 200)
	postMany(t, []string{urls[1], urls[0]}, "evt_two", 200)
	waitAllDelivered(t, pool, len(ids), 20*time.Second)
	sweeps.settle(t, []string{route.DefaultName}, ins...) // room for a wrong second delivery
	exactlyOnce(t, out, ids)
}

func TestQueueFullEventsAreSweptLater(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	out := harness.NewRecordingSink()
	cfg := fastRetries
	cfg.QueueSize, cfg.Workers = 1, 1
	cfg.DeliveryTimeout, cfg.Lease = 100*time.Millisecond, 11*time.Second // the shortest lease allowed
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Sink: out, Delivery: cfg})
	ids := postMany(t, []string{in.URL}, "evt_full", 30)
	waitAllDelivered(t, pool, len(ids), 30*time.Second)
	exactlyOnce(t, out, ids)
}
