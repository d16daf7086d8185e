package service_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/service"
	"github.com/oncehook/oncehook/internal/stripefake"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/receiver"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/store"
)

// asyncWarning is the operator's warning when acknowledged events can be
// lost at a failover and nothing recovers them.
const asyncWarning = "acknowledged events can be lost at a failover: set synchronous_standby_names, or STRIPE_API_KEY so that oncehook recovers them"

// failoverKey is the fake Events API's key.
const failoverKey = "sk_test_FAILOVERKEY0123456789"

// failoverNode is one instance of a failover test, on the test's own
// Postgres server, deciding with Redis and its recent ids.
type failoverNode struct {
	svc  *service.Service
	url  string
	sink *harness.RecordingSink
	log  *harness.Buffer
}

func startFailoverNode(t *testing.T, databaseURL string, rdb redis.UniversalClient, stripe service.StripeConfig) *failoverNode {
	t.Helper()
	n := &failoverNode{sink: harness.NewRecordingSink(), log: &harness.Buffer{}}
	cfg := startupConfig(databaseURL)
	cfg.AdminAddr = ""
	cfg.DedupRecentIDs = 10000
	cfg.Stripe = stripe
	svc, err := service.New(context.Background(), cfg, service.WithLogger(jsonLogger(n.log)), service.WithRedis(rdb),
		service.WithDestinations([]delivery.Destination{{Name: route.DefaultName, Sink: n.sink}}), service.WithoutPruner())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = svc.Stop(ctx)
	})
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.svc, n.url = svc, "http://"+svc.Addr()+receiver.WebhookPath
	return n
}

// post sends the event until it is answered 200 (a 503 while the
// instance reconnects to the promoted server is retried, as Stripe does)
// and returns the answer's status: accepted or duplicate.
func (n *failoverNode) post(t *testing.T, id string) string {
	t.Helper()
	var last harness.Response
	eventually.Require(t, 20*time.Second, "a 200 for "+id, func() bool {
		last = harness.Post(t, n.url, harness.EventBody(id, "invoice.paid"))
		if last.Code != 200 && last.Code != 503 {
			t.Fatalf("%s answered %d %s; want 200 or 503", id, last.Code, last.Body)
		}
		return last.Code == 200
	}, func() string { return fmt.Sprintf("last answer %d %s", last.Code, last.Body) })
	switch {
	case strings.Contains(last.Body, `"accepted"`):
		return "accepted"
	case strings.Contains(last.Body, `"duplicate"`):
		return "duplicate"
	}
	t.Fatalf("%s: answer %s", id, last.Body)
	return ""
}

func gauge(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			mt := mf.GetMetric()[0]
			if mt.GetCounter() != nil {
				return mt.GetCounter().GetValue()
			}
			return mt.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// loseCommits deletes the rows of ids, as if they had been committed on a
// primary whose asynchronous standby never got them; Redis keeps their
// "done" keys and the instances their recent ids.
func loseCommits(t *testing.T, pool *pgxpool.Pool, ids []string) {
	t.Helper()
	// The cascade to the deliveries may meet the dispatcher's last result
	// writes (a deadlock): retried.
	eventually.RequireNoError(t, 10*time.Second, "deleting the lost commits", func() error {
		tag, err := pool.Exec(context.Background(), `DELETE FROM stripe_webhook_events WHERE event_id = ANY($1)`, ids)
		if err == nil && tag.RowsAffected() != int64(len(ids)) {
			t.Fatalf("deleted %d rows of %d lost commits", tag.RowsAffected(), len(ids))
		}
		return err
	})
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("evt_%s_%02d", prefix, i)
	}
	return out
}

// TestFailoverForgetsWhatThePromotedServerLacks: two instances store
// events, deciding with Redis and their recent ids; some rows are lost
// (deleted) and the server's timeline is bumped, as a promotion does.
// Before the bump a resend of a lost event is answered duplicate from
// Redis or memory; after it, each instance notices the new timeline, one
// failover row is recorded and counted once, and a resend of a lost
// event is accepted and delivered again, while a kept event stays a
// duplicate. Without STRIPE_API_KEY the failover's log says that nothing
// recovers the lost events.
func TestFailoverForgetsWhatThePromotedServerLacks(t *testing.T) {
	t.Parallel()
	srv := testenv.StartPostgres(t)
	rdb, _ := testenv.Redis(t)
	a := startFailoverNode(t, srv.URL(), rdb, service.StripeConfig{})
	b := startFailoverNode(t, srv.URL(), rdb, service.StripeConfig{})
	evs := ids("fo", 12)
	for _, id := range evs {
		if got := a.post(t, id); got != "accepted" {
			t.Fatalf("%s: %s on its first delivery", id, got)
		}
	}
	a.sink.WaitFor(t, 10*time.Second, func(c map[string]int) bool { return len(c) == len(evs) })
	lost, kept := evs[:5], evs[5:]
	for _, id := range lost {
		b.post(t, id) // Redis now says done for each, on b's side too
	}
	loseCommits(t, serverPool(t, srv.URL()), lost)
	// The defect the failover fixes: memory and Redis vouch for rows that
	// are gone.
	if got := a.post(t, lost[0]); got != "duplicate" {
		t.Fatalf("before the failover, a lost event resent to the instance that stored it was %s; the test's premise is a duplicate from memory", got)
	}
	if got := b.post(t, lost[1]); got != "duplicate" {
		t.Fatalf("before the failover, a lost event resent to another instance was %s; the test's premise is a duplicate from Redis", got)
	}

	bumped := time.Now()
	srv.BumpTimeline(t)
	// Deliveries answered from Redis or memory use no connection: an
	// instance learns of the promotion from its next new connection or
	// its check each second, whichever comes first.
	for _, n := range []*failoverNode{a, b} {
		eventually.Require(t, 10*time.Second, "the instance on timeline 2", func() bool {
			return gauge(t, n.svc.Metrics(), "oncehook_postgres_timeline") == 2
		})
	}
	t.Logf("both instances on the new timeline %s after the bump began", time.Since(bumped).Round(time.Millisecond))

	for i, id := range lost {
		n := []*failoverNode{a, b}[i%2]
		if got := n.post(t, id); got != "accepted" {
			t.Errorf("after the failover, lost event %s resent: %s, want accepted", id, got)
		}
	}
	for _, id := range kept[:3] {
		if got := b.post(t, id); got != "duplicate" {
			t.Errorf("after the failover, kept event %s resent: %s, want duplicate", id, got)
		}
	}
	delivered := func(c map[string]int, id string) int { return c[id] }
	eventually.Require(t, 10*time.Second, "the lost events delivered again", func() bool {
		ca, cb := a.sink.Counts(), b.sink.Counts()
		for _, id := range lost {
			if delivered(ca, id)+delivered(cb, id) < 2 {
				return false
			}
		}
		return true
	})
	fs, err := store.New(a.svc.Pool()).Failovers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].OldTimeline != 1 || fs[0].NewTimeline != 2 {
		t.Fatalf("failovers recorded: %+v; want one, timeline 1 -> 2", fs)
	}
	if sum := gauge(t, a.svc.Metrics(), "oncehook_postgres_failovers_total") + gauge(t, b.svc.Metrics(), "oncehook_postgres_failovers_total"); sum != 1 {
		t.Errorf("oncehook_postgres_failovers_total summed over the instances: %v, want 1", sum)
	}
	for _, n := range []*failoverNode{a, b} {
		if tl := gauge(t, n.svc.Metrics(), "oncehook_postgres_timeline"); tl != 2 {
			t.Errorf("oncehook_postgres_timeline %v, want 2", tl)
		}
		if !strings.Contains(n.log.String(), "postgres failover detected: timeline 1 -> 2") {
			t.Errorf("an instance did not log the failover:\n%s", n.log.String())
		}
	}
	if logs := a.log.String() + b.log.String(); !strings.Contains(logs, "without STRIPE_API_KEY") || !strings.Contains(logs, asyncWarning) {
		t.Errorf("no warning that the lost events are not recovered:\n%s", logs)
	}
}

// TestFailoverHealsFromTheEventsAPI: with STRIPE_API_KEY set (and the
// periodic reconciler off), the events lost at the failover come back by
// themselves: the failover's window is listed, delivered events included,
// the lost ones are stored and delivered again, and the failover's row,
// its log and its metrics say how many.
func TestFailoverHealsFromTheEventsAPI(t *testing.T) {
	t.Parallel()
	srv := testenv.StartPostgres(t)
	rdb, _ := testenv.Redis(t)
	fake := stripefake.New(t, failoverKey)
	evs := ids("heal", 20)
	now := time.Now()
	for i, id := range evs {
		// Stripe counts each as delivered: oncehook answered 200.
		fake.Add(stripefake.Event{ID: id, Type: "invoice.paid", Created: now.Add(-time.Duration(len(evs)-i) * time.Second), DeliverySuccess: true})
	}
	n := startFailoverNode(t, srv.URL(), rdb, service.StripeConfig{APIKey: failoverKey, APIBase: fake.URL()})
	for _, id := range evs {
		n.post(t, id)
	}
	n.sink.WaitFor(t, 10*time.Second, func(c map[string]int) bool { return len(c) == len(evs) })
	lost := evs[len(evs)-7:] // the last commits, as an asynchronous standby lacks them
	loseCommits(t, serverPool(t, srv.URL()), lost)

	bumped := time.Now()
	srv.BumpTimeline(t)

	var healed store.Failover
	eventually.Require(t, 30*time.Second, "the failover healed", func() bool {
		fs, err := store.New(n.svc.Pool()).Failovers(context.Background())
		if err != nil || len(fs) != 1 || fs[0].HealedAt.IsZero() {
			return false
		}
		healed = fs[0]
		return true
	}, func() string { return n.log.String() })
	t.Logf("healed %s after the bump: %+v", time.Since(bumped).Round(time.Millisecond), healed)
	if healed.Recovered != int64(len(lost)) || healed.OldTimeline != 1 || healed.NewTimeline != 2 {
		t.Errorf("failover row %+v; want timeline 1 -> 2, %d recovered", healed, len(lost))
	}
	n.sink.WaitFor(t, 10*time.Second, func(c map[string]int) bool {
		for _, id := range lost {
			if c[id] != 2 {
				return false
			}
		}
		return true
	})
	c := n.sink.Counts()
	for _, id := range evs[:len(evs)-len(lost)] {
		if c[id] != 1 {
			t.Errorf("kept event %s delivered %d times, want once", id, c[id])
		}
	}
	if got := gauge(t, n.svc.Metrics(), "oncehook_failover_recovered_events_total"); got != float64(len(lost)) {
		t.Errorf("oncehook_failover_recovered_events_total %v, want %d", got, len(lost))
	}
	if got := gauge(t, n.svc.Metrics(), "oncehook_postgres_failovers_total"); got != 1 {
		t.Errorf("oncehook_postgres_failovers_total %v, want 1", got)
	}
	if want := fmt.Sprintf("postgres failover healed: recovered %d events", len(lost)); !strings.Contains(n.log.String(), want) {
		t.Errorf("no log %q:\n%s", want, n.log.String())
	}
	// The lost events, back in the ledger, are duplicates again.
	if got := n.post(t, lost[0]); got != "duplicate" {
		t.Errorf("a healed event resent: %s, want duplicate", got)
	}
}

// TestAsynchronousStandbyWarnsWithoutAPIKey: a primary streaming to a
// standby that is not synchronous (pg_receivewal stands in for it) gets a
// warning at start when STRIPE_API_KEY is unset, and none when it is set.
func TestAsynchronousStandbyWarnsWithoutAPIKey(t *testing.T) {
	t.Parallel()
	srv := testenv.StartPostgres(t)
	cmd := exec.Command(testenv.PgBinary(t, "pg_receivewal"), "-D", t.TempDir(), "-h", "127.0.0.1", "-p", srv.Port(), "-U", "postgres", "-n")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	pool := serverPool(t, srv.URL())
	eventually.Require(t, 10*time.Second, "a standby streaming", func() bool {
		r, err := store.New(pool).Replication(context.Background())
		return err == nil && r.OnlyAsynchronous()
	})
	off := startFailoverNode(t, srv.URL(), nil, service.StripeConfig{})
	if !strings.Contains(off.log.String(), asyncWarning) {
		t.Errorf("no warning at start without STRIPE_API_KEY:\n%s", off.log.String())
	}
	fake := stripefake.New(t, failoverKey)
	on := startFailoverNode(t, srv.URL(), nil, service.StripeConfig{APIKey: failoverKey, APIBase: fake.URL()})
	if strings.Contains(on.log.String(), asyncWarning) {
		t.Errorf("a warning at start with STRIPE_API_KEY set:\n%s", on.log.String())
	}
}

// serverPool is a pool of the test's own on url, closed when it ends.
func serverPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// TestFailoverWhileNoInstanceRanIsFoundAtStart: the timeline rises while
// no instance runs; the next instance to start records the failover, and
// says so, before it takes a webhook.
func TestFailoverWhileNoInstanceRanIsFoundAtStart(t *testing.T) {
	t.Parallel()
	srv := testenv.StartPostgres(t)
	first := startFailoverNode(t, srv.URL(), nil, service.StripeConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a loaded machine is slow
	defer cancel()
	stopping := time.Now()
	if err := first.svc.Stop(ctx); err != nil {
		t.Fatalf("stopping after %s: %v\n%s", time.Since(stopping), err, first.log.String())
	}
	srv.BumpTimeline(t)
	next := startFailoverNode(t, srv.URL(), nil, service.StripeConfig{})
	fs, err := store.New(next.svc.Pool()).Failovers(context.Background())
	if err != nil || len(fs) != 1 || fs[0].OldTimeline != 1 || fs[0].NewTimeline != 2 {
		t.Fatalf("failovers at start: %+v, %v; want one, timeline 1 -> 2", fs, err)
	}
	if !strings.Contains(next.log.String(), "postgres failover detected: timeline 1 -> 2") {
		t.Errorf("the instance that started after the failover did not log it:\n%s", next.log.String())
	}
	if got := gauge(t, next.svc.Metrics(), "oncehook_postgres_failovers_total"); got != 1 {
		t.Errorf("oncehook_postgres_failovers_total %v, want 1", got)
	}
}
