package reconcile_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/stripefake"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/reconcile"
	"github.com/oncehook/oncehook/stripeapi"
)

func statuses(reqs []stripefake.Request) []int {
	out := make([]int, len(reqs))
	for i, r := range reqs {
		out[i] = r.Status
	}
	return out
}

// TestRetryableErrorsAreRetriedUntilAPageComes: a rate limit, a 5xx and
// anything Stripe-Should-Retry: true marks are retried with backoff, and
// the run succeeds.
func TestRetryableErrorsAreRetriedUntilAPageComes(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	fake := stripefake.New(t, apiKey)
	addEvents(fake, "evt_retry", 10, time.Now(), "invoice.paid")
	r := newReconciler(t, reconcile.Config{Lister: newClient(t, fake, apiKey), Pool: pool, Store: newStore(t, pool)})
	for _, c := range []struct {
		n, status   int
		shouldRetry string
	}{{2, 429, ""}, {1, 503, ""}, {1, 400, "true"}} {
		before := len(fake.Requests())
		fake.FailNext(c.n, c.status, c.shouldRetry)
		if _, err := r.RunOnce(t.Context(), reconcile.Run{}); err != nil {
			t.Fatalf("%d (Stripe-Should-Retry %q) x%d: %v", c.status, c.shouldRetry, c.n, err)
		}
		want := append(slices.Repeat([]int{c.status}, c.n), 200)
		if got := statuses(fake.Requests()[before:]); !slices.Equal(got, want) {
			t.Errorf("%d (Stripe-Should-Retry %q) x%d: answers %v, want %v", c.status, c.shouldRetry, c.n, got, want)
		}
	}
	if n := len(sources(t, pool)); n != 10 {
		t.Errorf("%d events stored, want 10", n)
	}
}

// TestNonRetryableErrorsFailAtOnceAndLeaveTheCheckpoint: a 400, or a 503
// with Stripe-Should-Retry: false, fails the run after one request; a
// retryable error fails it after MaxTries; none moves the checkpoint.
func TestNonRetryableErrorsFailAtOnceAndLeaveTheCheckpoint(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	fake := stripefake.New(t, apiKey)
	addEvents(fake, "evt_fail", 10, time.Now(), "invoice.paid")
	old := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	setCheckpoint(t, pool, old)
	r := newReconciler(t, reconcile.Config{Lister: newClient(t, fake, apiKey), Pool: pool, Store: newStore(t, pool), MaxTries: 3})
	for _, c := range []struct {
		status      int
		shouldRetry string
		tries       int
	}{{400, "", 1}, {503, "false", 1}, {500, "", 3}, {429, "", 3}} {
		before := len(fake.Requests())
		fake.FailNext(10, c.status, c.shouldRetry)
		_, err := r.RunOnce(t.Context(), reconcile.Run{})
		fake.FailNext(0, 0, "")
		var api *stripeapi.APIError
		if !errors.As(err, &api) || api.Status != c.status {
			t.Errorf("%d (Stripe-Should-Retry %q): error %v, want an APIError %d", c.status, c.shouldRetry, err, c.status)
		}
		if got := len(fake.Requests()) - before; got != c.tries {
			t.Errorf("%d (Stripe-Should-Retry %q): %d requests, want %d", c.status, c.shouldRetry, got, c.tries)
		}
		if cp, _ := checkpoint(t, pool); !cp.Equal(old) {
			t.Errorf("%d: the failed run moved the checkpoint to %v", c.status, cp)
		}
	}
	if n := len(sources(t, pool)); n != 0 {
		t.Errorf("%d events stored by failed runs", n)
	}
}

// TestRejectedKeyFailsAtOnceNamingIt: a key Stripe rejects (401) or one
// without read access to events (403) fails the run after one request,
// with a message saying what is wrong with STRIPE_API_KEY.
func TestRejectedKeyFailsAtOnceNamingIt(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	fake := stripefake.New(t, apiKey)
	addEvents(fake, "evt_key", 3, time.Now(), "invoice.paid")
	fake.SetForbidden("rk_test_51NoEventsRead")
	for _, c := range []struct {
		key  string
		want []string
	}{
		{"sk_test_51WrongKey0000", []string{"401", "STRIPE_API_KEY"}},
		{"rk_test_51NoEventsRead", []string{"403", "STRIPE_API_KEY", "read access"}},
	} {
		before := len(fake.Requests())
		r := newReconciler(t, reconcile.Config{Lister: newClient(t, fake, c.key), Pool: pool, Store: newStore(t, pool)})
		_, err := r.RunOnce(t.Context(), reconcile.Run{})
		if err == nil {
			t.Fatalf("%s: run succeeded", c.key)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", c.key, err, w)
			}
		}
		if got := len(fake.Requests()) - before; got != 1 {
			t.Errorf("%s: %d requests, want 1 (no retries)", c.key, got)
		}
	}
	if _, ok := checkpoint(t, pool); ok {
		t.Error("a rejected run set the checkpoint")
	}
}

// TestCheckpointNeverPassesAnEventItFailedToStore: when storing one event
// fails, the run fails at it and sets no checkpoint; the next run lists
// the window again and stores it.
func TestCheckpointNeverPassesAnEventItFailedToStore(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	store := newStore(t, pool)
	fake := stripefake.New(t, apiKey)
	ids := addEvents(fake, "evt_store", 250, time.Now(), "invoice.paid")
	bad := ids[150]
	lister := newClient(t, fake, apiKey)

	broken := newReconciler(t, reconcile.Config{Lister: lister, Pool: pool, Store: failingStore{next: store, id: bad}})
	sum, err := broken.RunOnce(t.Context(), reconcile.Run{})
	if !errors.Is(err, errStoreDown) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("run with a failing store: %v, want the store's error naming %s", err, bad)
	}
	if want := (reconcile.Progress{Pages: 2, Seen: 200, Missing: 151, Stored: 150}); sum.Progress != want {
		t.Errorf("failed run %+v, want %+v", sum.Progress, want)
	}
	if _, ok := checkpoint(t, pool); ok {
		t.Fatal("the checkpoint was set past an event that was not stored")
	}
	if _, ok := sources(t, pool)[bad]; ok {
		t.Fatalf("%s stored by the failing store", bad)
	}

	sum, err = newReconciler(t, reconcile.Config{Lister: lister, Pool: pool, Store: store}).RunOnce(t.Context(), reconcile.Run{})
	if err != nil {
		t.Fatal(err)
	}
	if want := (reconcile.Progress{Pages: 3, Seen: 250, Missing: 100, Stored: 100}); sum.Progress != want {
		t.Errorf("next run %+v, want %+v", sum.Progress, want)
	}
	if sources(t, pool)[bad] != "reconcile" {
		t.Errorf("%s not stored by the next run", bad)
	}
	if cp, ok := checkpoint(t, pool); !ok || !cp.Equal(sum.Through) {
		t.Errorf("checkpoint %v (%v), want %v", cp, ok, sum.Through)
	}
}

// TestConfigErrors: New refuses what Stripe's Events API cannot do.
func TestConfigErrors(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none") // never connects
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	lister := &stripeapi.Client{}
	types := make([]string, 21)
	for i := range types {
		types[i] = "invoice.t" + string(rune('a'+i))
	}
	for _, c := range []struct {
		name string
		cfg  reconcile.Config
		want string
	}{
		{"no lister", reconcile.Config{Pool: pool}, "required"},
		{"no pool", reconcile.Config{Lister: lister}, "required"},
		{"lookback over 30 days", reconcile.Config{Lister: lister, Pool: pool, Lookback: reconcile.MaxLookback + time.Hour}, "30 days"},
		{"negative lookback", reconcile.Config{Lister: lister, Pool: pool, Lookback: -time.Hour}, "30 days"},
		{"negative overlap", reconcile.Config{Lister: lister, Pool: pool, Overlap: -time.Hour}, "negative"},
		{"negative interval", reconcile.Config{Lister: lister, Pool: pool, Interval: -time.Second}, "negative"},
		{"21 types", reconcile.Config{Lister: lister, Pool: pool, Types: types}, "at most 20"},
	} {
		if _, err := reconcile.New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
	if _, err := reconcile.New(reconcile.Config{Lister: lister, Pool: pool, Lookback: reconcile.MaxLookback, Types: types[:20]}); err != nil {
		t.Errorf("30 days and 20 types: %v", err)
	}
}

// TestAnEventThatCannotBeStoredIsSkipped: a listed event no webhook could
// bring (nested deeper than the receiver takes) is counted as rejected and
// skipped; the others are stored and the checkpoint moves, so the
// reconciler is not stuck on it run after run.
func TestAnEventThatCannotBeStoredIsSkipped(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	fake := stripefake.New(t, apiKey)
	deep := strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100)
	fake.Add(stripefake.Event{ID: "evt_too_deep", Type: "invoice.paid", Created: time.Now().Add(-time.Hour), Data: []byte(deep)},
		stripefake.Event{ID: "evt_fine", Type: "invoice.paid", Created: time.Now().Add(-2 * time.Hour)})
	r := newReconciler(t, reconcile.Config{Lister: newClient(t, fake, apiKey), Pool: pool, Store: newStore(t, pool)})
	sum, err := r.RunOnce(t.Context(), reconcile.Run{})
	if err != nil || sum.Stored != 1 || sum.Rejected != 1 || !sum.Checkpointed {
		t.Fatalf("run: %+v, %v; want one stored, one rejected, the checkpoint moved", sum, err)
	}
	var n int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM stripe_webhook_events WHERE event_id = 'evt_too_deep'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the rejected event is stored (%d, %v)", n, err)
	}
}

// TestAHostileListedIDIsSkippedAndTheRestStored: a listed event whose id
// Postgres cannot take (a NUL) or no webhook could bring (an ESC sequence)
// used to fail the ledger lookup of its whole page, run after run, so the
// good events beside it were never stored. It is skipped, counted and
// logged escaped; the rest of the page is stored and the checkpoint moves.
func TestAHostileListedIDIsSkippedAndTheRestStored(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	fake := stripefake.New(t, apiKey)
	now := time.Now()
	fake.Add(stripefake.Event{ID: "evt_good_new", Type: "invoice.paid", Created: now.Add(-time.Hour)},
		stripefake.Event{ID: "evt_nul\u0000x", Type: "invoice.paid", Created: now.Add(-2 * time.Hour)},
		stripefake.Event{ID: "evt_esc\x1b]0;pwned\x07", Type: "invoice.paid", Created: now.Add(-3 * time.Hour)},
		stripefake.Event{ID: "evt_good_old", Type: "invoice.paid", Created: now.Add(-4 * time.Hour)})
	var logs bytes.Buffer
	m := metrics.New()
	r := newReconciler(t, reconcile.Config{Lister: newClient(t, fake, apiKey), Pool: pool, Store: newStore(t, pool), Metrics: m,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	sum, err := r.RunOnce(t.Context(), reconcile.Run{})
	if err != nil || sum.Seen != 4 || sum.Stored != 2 || sum.Rejected != 2 || !sum.Checkpointed {
		t.Fatalf("run: %+v, %v; want 4 seen, 2 stored, 2 rejected, the checkpoint moved", sum, err)
	}
	if src := sources(t, pool); len(src) != 2 || src["evt_good_new"] == "" || src["evt_good_old"] == "" {
		t.Fatalf("stored %v, want the two good events", src)
	}
	if n := counter(t, m, "oncehook_reconcile_rejected_total", ""); n != 2 {
		t.Errorf("rejected counter %v, want 2", n)
	}
	if n := strings.Count(logs.String(), "skipped a listed event whose id oncehook cannot store"); n != 2 || strings.ContainsAny(logs.String(), "\x00\x1b\x07") {
		t.Errorf("log (%d lines on it), want two, escaped:\n%q", n, logs.String())
	}
}
