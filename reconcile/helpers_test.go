package reconcile_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/stripefake"
	"github.com/oncehook/oncehook/reconcile"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/stripeapi"
)

// apiKey is the key the fake Stripe accepts.
const apiKey = "sk_test_51ReconcileTestKey4242"

var quiet = slog.New(slog.DiscardHandler)

// fastDelivery retries and sweeps quickly, as delivery's tests do.
var fastDelivery = delivery.DispatcherConfig{
	RetryBase: 10 * time.Millisecond, RetryMax: 200 * time.Millisecond,
	SweepInterval: 20 * time.Millisecond, FlushInterval: 5 * time.Millisecond,
	MaxAttempts: 50, Workers: 4, Logger: quiet,
}

// newClient is a real stripeapi.Client of fake with key.
func newClient(t *testing.T, fake *stripefake.Server, key string) *stripeapi.Client {
	t.Helper()
	c, err := stripeapi.New(stripeapi.Config{Key: key, Base: fake.URL(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newReconciler is reconcile.New with quick retries and paging and no logs.
func newReconciler(t *testing.T, cfg reconcile.Config) *reconcile.Reconciler {
	t.Helper()
	if cfg.RetryBase == 0 {
		cfg.RetryBase = 10 * time.Millisecond
	}
	if cfg.PageInterval == 0 {
		cfg.PageInterval = time.Millisecond
	}
	if cfg.Slice == 0 {
		// One listing per window, as these tests count its pages;
		// TestLongWindowGoesInSlices covers slices.
		cfg.Slice = reconcile.MaxLookback
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	r, err := reconcile.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// newStore is a Postgres-only Deduper with the default route.
func newStore(t *testing.T, pool *pgxpool.Pool) *dedup.Deduper {
	t.Helper()
	dd, err := dedup.New(dedup.Config{Pool: pool, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := dd.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dd.Stop(context.Background()) })
	return dd
}

// addEvents adds n events prefix_000... of the given types in turn, that
// Stripe failed to deliver, created a second apart going back from newest;
// the ids come back in list order (newest first).
func addEvents(fake *stripefake.Server, prefix string, n int, newest time.Time, types ...string) []string {
	ids := make([]string, n)
	evs := make([]stripefake.Event, n)
	for i := range n {
		ids[i] = fmt.Sprintf("%s_%03d", prefix, i)
		evs[i] = stripefake.Event{ID: ids[i], Type: types[i%len(types)], Created: newest.Add(-time.Duration(i) * time.Second)}
	}
	fake.Add(evs...)
	return ids
}

// twoDestinations: billing takes invoice.*, crm customer.*.
func twoDestinations() (billing, crm *harness.RecordingSink, dests []delivery.Destination) {
	billing, crm = harness.NewRecordingSink(), harness.NewRecordingSink()
	return billing, crm, []delivery.Destination{
		{Name: "billing", Sink: billing, Filter: route.Filter{Types: []string{"invoice.*"}}},
		{Name: "crm", Sink: crm, Filter: route.Filter{Types: []string{"customer.*"}}},
	}
}

// node is a receiver instance without its HTTP server, wired as
// internal/service wires its reconciler: a Deduper routing to the dispatcher's
// destinations, and the dispatcher's Enqueue.
type node struct {
	dedup *dedup.Deduper
	disp  *delivery.Dispatcher
}

func startNode(t *testing.T, pool *pgxpool.Pool, rdb redis.UniversalClient, prefix string, dests []delivery.Destination) *node {
	t.Helper()
	dc := fastDelivery
	dc.Pool, dc.Destinations = pool, dests
	dc = dc.WithDefaults()
	disp, err := delivery.NewDispatcher(dc)
	if err != nil {
		t.Fatal(err)
	}
	dd, err := dedup.New(dedup.Config{Pool: pool, Redis: rdb, KeyPrefix: prefix, Lease: dc.Lease, Routes: disp.Routes(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = dd.Stop(ctx)
		_ = disp.Stop(ctx)
	})
	if err := disp.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := dd.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &node{dedup: dd, disp: disp}
}

// failingStore fails to store one event id, and stores the others.
type failingStore struct {
	next dedup.Storer
	id   string
}

var errStoreDown = errors.New("store down")

func (s failingStore) StoreOnce(ctx context.Context, ev *event.Event) (dedup.Result, error) {
	if ev.ID == s.id {
		return dedup.Result{}, errStoreDown
	}
	return s.next.StoreOnce(ctx, ev)
}

// checkpoint is the only listing's listed_through, if there is one.
func checkpoint(t *testing.T, pool *pgxpool.Pool) (time.Time, bool) {
	t.Helper()
	var through time.Time
	err := pool.QueryRow(context.Background(), `SELECT listed_through FROM stripe_webhook_reconcile_checkpoints`).Scan(&through)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return through, true
}

// setCheckpoint makes the default listing's checkpoint at.
func setCheckpoint(t *testing.T, pool *pgxpool.Pool, at time.Time) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), `INSERT INTO stripe_webhook_reconcile_checkpoints (listing, listed_through)
		VALUES ('delivery_success=false', $1)`, at); err != nil {
		t.Fatal(err)
	}
}

// sources maps each ledger row's id to its source ("" for NULL).
func sources(t *testing.T, pool *pgxpool.Pool) map[string]string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT event_id, COALESCE(source, '') FROM stripe_webhook_events`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var id, src string
	_, err = pgx.ForEachRow(rows, []any{&id, &src}, func() error {
		out[id] = src
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// deliveryRows counts the delivery rows per event id and destination.
func deliveryRows(t *testing.T, pool *pgxpool.Pool) map[string]int {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT event_id || '@' || destination, count(*) FROM stripe_webhook_deliveries GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	var key string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&key, &n}, func() error {
		out[key] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitDelivered waits until n delivery rows are delivered.
func waitDelivered(t *testing.T, pool *pgxpool.Pool, n int, timeout time.Duration) {
	t.Helper()
	eventually.Require(t, timeout, fmt.Sprintf("%d deliveries delivered", n), func() bool {
		var got int
		err := pool.QueryRow(context.Background(), `SELECT count(*) FROM stripe_webhook_deliveries WHERE status = 'delivered'`).Scan(&got)
		return err == nil && got >= n
	})
}

// settled waits until the node's dispatcher holds no event, queued or
// under way: whatever a run has enqueued has reached its sink, so that a
// count of deliveries is final (nothing more may come).
func (n *node) settled(t *testing.T) {
	t.Helper()
	eventually.Require(t, 10*time.Second, "the node's queues to drain", func() bool { return n.disp.QueueBytes() == 0 })
}

// exactlyOnce checks that sink got each of ids once and nothing else.
func exactlyOnce(t *testing.T, name string, sink *harness.RecordingSink, ids []string) {
	t.Helper()
	c := sink.Counts()
	for _, id := range ids {
		if c[id] != 1 {
			t.Errorf("%s got %s %d times, want 1", name, id, c[id])
		}
	}
	if len(c) != len(ids) {
		t.Errorf("%s got %d ids, want %d", name, len(c), len(ids))
	}
}

// counter reads a counter of m by name and label value ("" for none).
func counter(t *testing.T, m *metrics.Metrics, name, label string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			if label == "" || (len(mt.GetLabel()) > 0 && mt.GetLabel()[0].GetValue() == label) {
				return mt.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// listRequests are the fake's GET /v1/events requests.
func listRequests(fake *stripefake.Server) []stripefake.Request {
	var out []stripefake.Request
	for _, r := range fake.Requests() {
		if r.Path == "/v1/events" {
			out = append(out, r)
		}
	}
	return out
}
