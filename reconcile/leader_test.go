package reconcile_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/stripefake"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/reconcile"
	"github.com/oncehook/oncehook/stripeapi"
)

// watchedLister records one instance's listings, and calls afterPage
// after each page it got.
type watchedLister struct {
	next      reconcile.Lister
	afterPage func()
	mu        sync.Mutex
	since     []time.Time
	pages     atomic.Int64
}

func (l *watchedLister) ListEvents(ctx context.Context, p stripeapi.ListParams) (stripeapi.Page, error) {
	l.mu.Lock()
	l.since = append(l.since, p.CreatedGTE)
	l.mu.Unlock()
	page, err := l.next.ListEvents(ctx, p)
	if err == nil {
		l.pages.Add(1)
		l.afterPage()
	}
	return page, err
}

func (l *watchedLister) firstSince() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.since) == 0 {
		return time.Time{}
	}
	return l.since[0]
}

// instance is one receiver's background reconciler, on a pool of its own
// whose connections carry its name, so that its lock can be found.
type instance struct {
	name   string
	pool   *pgxpool.Pool
	lister *watchedLister
	m      *metrics.Metrics
	r      *reconcile.Reconciler
}

func newInstance(t *testing.T, pool *pgxpool.Pool, name string, lister reconcile.Lister, afterPage func()) *instance {
	t.Helper()
	cfg := pool.Config().Copy()
	cfg.ConnConfig.RuntimeParams["application_name"] = name
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	in := &instance{name: name, pool: p, lister: &watchedLister{next: lister, afterPage: afterPage}, m: metrics.New()}
	in.r = newReconciler(t, reconcile.Config{Lister: in.lister, Pool: p, Store: newStore(t, p),
		Interval: 100 * time.Millisecond, Metrics: in.m})
	return in
}

// stop stops the instance's reconciler, failing the test if that takes long.
func (in *instance) stop(t *testing.T) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		_ = in.r.Stop(context.Background())
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: Stop did not return within 5s", in.name)
	}
}

// TestKilledLeaderIsTakenOverFromTheCheckpoint: of two instances on one
// database, one leads and lists while the other skips; when the leader
// dies mid-run (its Postgres connection, and so its lock, goes), the
// other's next tick takes over from the checkpoint and stores the rest,
// every event once.
func TestKilledLeaderIsTakenOverFromTheCheckpoint(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	fake := stripefake.New(t, apiKey)
	client := newClient(t, fake, apiKey)
	old := addEvents(fake, "evt_old", 3, time.Now().Add(-3*time.Hour), "invoice.paid")
	first, err := newReconciler(t, reconcile.Config{Lister: client, Pool: pool, Store: newStore(t, pool)}).RunOnce(t.Context(), reconcile.Run{})
	if err != nil || first.Stored != len(old) {
		t.Fatalf("first run: %+v, %v", first, err)
	}
	ids := addEvents(fake, "evt_lead", 150, time.Now(), "invoice.paid")

	// After the first page any instance gets, every request waits.
	block := make(chan struct{})
	var holdOnce sync.Once
	hold := func() { holdOnce.Do(func() { fake.Hold(block) }) }
	suffix := testenv.RandomHex(4)
	a := newInstance(t, pool, "reconcile_a_"+suffix, client, hold)
	b := newInstance(t, pool, "reconcile_b_"+suffix, client, hold)
	if err := errors.Join(a.r.Start(context.Background()), b.r.Start(context.Background())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = errors.Join(a.r.Stop(context.Background()), b.r.Stop(context.Background())) })

	eventually.Require(t, 10*time.Second, "stuck on page 2", func() bool { return len(listRequests(fake)) == first.Pages+2 })
	leader, follower := a, b
	if b.lister.pages.Load() > 0 {
		leader, follower = b, a
	}
	eventually.Require(t, 5*time.Second, "skipped thrice", func() bool { return counter(t, follower.m, "oncehook_reconcile_runs_total", "skipped") >= 3 })
	if n := len(listRequests(fake)); n != first.Pages+2 || follower.lister.pages.Load() != 0 {
		t.Fatalf("%d list requests, %d pages read by the follower, while the leader was stuck: want 2 requests, none", n-first.Pages, follower.lister.pages.Load())
	}
	if got := len(sources(t, pool)); got != len(old)+100 {
		t.Errorf("the leader stored %d events before it got stuck, want its first page (100)", got-len(old))
	}

	// Kill the leader: its lock's connection goes, then the instance.
	var killed int
	err = pool.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = $1`, leader.name).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("terminated %d lock holders of %s (%v), want 1", killed, leader.name, err)
	}
	leader.stop(t)
	fake.Hold(nil)
	close(block)

	eventually.Require(t, 10*time.Second, "a run done by the follower", func() bool { return counter(t, follower.m, "oncehook_reconcile_runs_total", "ok") >= 1 })
	if want := first.Through.Add(-time.Hour); !follower.lister.firstSince().Equal(want) {
		t.Errorf("the follower listed from %v, want the checkpoint less the overlap %v", follower.lister.firstSince(), want)
	}
	src := sources(t, pool)
	if len(src) != len(old)+len(ids) {
		t.Errorf("%d events stored, want %d", len(src), len(old)+len(ids))
	}
	for _, id := range ids {
		if src[id] != "reconcile" {
			t.Errorf("%s: source %q", id, src[id])
		}
	}
	lead, follow := counter(t, leader.m, "oncehook_reconciled_total", ""), counter(t, follower.m, "oncehook_reconciled_total", "")
	if lead != 100 || follow != 50 {
		t.Errorf("the leader stored %v and the follower %v, want 100 and 50", lead, follow)
	}
	if cp, _ := checkpoint(t, pool); cp.Before(first.Through) {
		t.Errorf("checkpoint %v went back from %v", cp, first.Through)
	}
}
