package reconcile_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/stripefake"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/reconcile"
)

// TestGapOfFivePagesIsDeliveredOncePerMatchingDestination: 500 events
// Stripe failed to deliver, over five pages, are stored marked reconcile
// and delivered once to each destination whose filter matches them (none
// to the other); a second run finds nothing missing.
func TestGapOfFivePagesIsDeliveredOncePerMatchingDestination(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	billing, crm, dests := twoDestinations()
	n := startNode(t, pool, rdb, prefix, dests)
	fake := stripefake.New(t, apiKey)
	ids := addEvents(fake, "evt_gap", 500, time.Now(), "invoice.paid", "customer.created", "invoice.payment_failed", "charge.succeeded")
	fake.Add(stripefake.Event{ID: "evt_gap_delivered", Type: "invoice.paid", DeliverySuccess: true})
	var wantBilling, wantCRM []string
	for i, id := range ids {
		switch i % 4 {
		case 0, 2:
			wantBilling = append(wantBilling, id)
		case 1:
			wantCRM = append(wantCRM, id)
		}
	}
	r := newReconciler(t, reconcile.Config{Lister: newClient(t, fake, apiKey), Pool: pool, Store: n.dedup, Enqueue: n.disp.Enqueue})

	sum, err := r.RunOnce(t.Context(), reconcile.Run{})
	if err != nil {
		t.Fatal(err)
	}
	if want := (reconcile.Progress{Pages: 5, Seen: 500, Missing: 500, Stored: 500}); sum.Progress != want {
		t.Errorf("first run %+v, want %+v", sum.Progress, want)
	}
	reqs := listRequests(fake)
	if len(reqs) != 5 {
		t.Fatalf("%d list requests, want 5", len(reqs))
	}
	for i, req := range reqs {
		if q := req.Query; q.Get("delivery_success") != "false" || q.Get("limit") != "100" || (i > 0) != (q.Get("starting_after") != "") {
			t.Errorf("request %d: %s", i, req.RawQuery)
		}
	}
	waitDelivered(t, pool, len(wantBilling)+len(wantCRM), 20*time.Second)
	n.settled(t) // nothing more may come
	exactlyOnce(t, "billing", billing, wantBilling)
	exactlyOnce(t, "crm", crm, wantCRM)
	src := sources(t, pool)
	if len(src) != len(ids) {
		t.Errorf("%d ledger rows, want %d", len(src), len(ids))
	}
	for _, id := range ids {
		if src[id] != "reconcile" {
			t.Errorf("%s: source %q, want reconcile", id, src[id])
		}
	}
	if _, ok := checkpoint(t, pool); !ok {
		t.Error("no checkpoint after a good run")
	}

	sum, err = r.RunOnce(t.Context(), reconcile.Run{})
	if err != nil {
		t.Fatal(err)
	}
	if want := (reconcile.Progress{Pages: 5, Seen: 500}); sum.Progress != want {
		t.Errorf("second run %+v, want %+v", sum.Progress, want)
	}
	n.settled(t) // nothing more may come
	exactlyOnce(t, "billing", billing, wantBilling)
	exactlyOnce(t, "crm", crm, wantCRM)
	if got := len(sources(t, pool)); got != len(ids) {
		t.Errorf("%d ledger rows after the second run, want %d", got, len(ids))
	}
}

// TestEventsReceivedAsWebhooksAreNotStoredOrDeliveredAgain: of the events
// listed, those already received as webhooks are neither stored again nor
// delivered again, and keep their webhook source (NULL).
func TestEventsReceivedAsWebhooksAreNotStoredOrDeliveredAgain(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	billing, crm, dests := twoDestinations()
	d := fastDelivery
	d.Destinations = dests
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Redis: rdb, KeyPrefix: prefix, Delivery: d})
	n := startNode(t, pool, rdb, prefix, dests)
	fake := stripefake.New(t, apiKey)
	types := []string{"invoice.paid", "customer.created"}
	ids := addEvents(fake, "evt_hook", 60, time.Now(), types...)
	var hooked, billed, crmed []string
	for i, id := range ids {
		if i%2 == 0 {
			billed = append(billed, id)
		} else {
			crmed = append(crmed, id)
		}
		if i%3 == 0 {
			hooked = append(hooked, id)
			if r := harness.Post(t, in.URL, harness.EventBody(id, types[i%2])); r.Code != 200 || !strings.Contains(r.Body, "accepted") {
				t.Fatalf("%s: %d %s", id, r.Code, r.Body)
			}
		}
	}
	waitDelivered(t, pool, len(hooked), 10*time.Second)
	r := newReconciler(t, reconcile.Config{Lister: newClient(t, fake, apiKey), Pool: pool, Store: n.dedup, Enqueue: n.disp.Enqueue})

	sum, err := r.RunOnce(t.Context(), reconcile.Run{})
	if err != nil {
		t.Fatal(err)
	}
	if want := (reconcile.Progress{Pages: 1, Seen: 60, Missing: 40, Stored: 40}); sum.Progress != want {
		t.Errorf("run %+v, want %+v", sum.Progress, want)
	}
	waitDelivered(t, pool, len(ids), 10*time.Second)
	n.settled(t) // nothing more may come
	exactlyOnce(t, "billing", billing, billed)
	exactlyOnce(t, "crm", crm, crmed)
	src := sources(t, pool)
	for i, id := range ids {
		if want := map[bool]string{true: "", false: "reconcile"}[i%3 == 0]; src[id] != want {
			t.Errorf("%s: source %q, want %q", id, src[id], want)
		}
	}
}

// TestOverlapCatchesAnEventListedLate: the second run lists from the
// checkpoint less the overlap, so it stores an event created before the
// checkpoint that Stripe listed only after the first run, but not one
// created before that window.
func TestOverlapCatchesAnEventListedLate(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	fake := stripefake.New(t, apiKey)
	addEvents(fake, "evt_first", 3, time.Now().Add(-5*time.Hour), "invoice.paid")
	r := newReconciler(t, reconcile.Config{Lister: newClient(t, fake, apiKey), Pool: pool, Store: newStore(t, pool), Overlap: time.Hour})

	first, err := r.RunOnce(t.Context(), reconcile.Run{})
	if err != nil {
		t.Fatal(err)
	}
	if first.Stored != 3 {
		t.Errorf("first run stored %d, want 3", first.Stored)
	}
	cp, ok := checkpoint(t, pool)
	if !ok || !cp.Equal(first.Through) {
		t.Fatalf("checkpoint %v (%v), want the first run's start %v", cp, ok, first.Through)
	}
	if gte := listRequests(fake)[0].Query.Get("created[gte]"); gte != strconv.FormatInt(first.Through.Add(-72*time.Hour).Unix(), 10) {
		t.Errorf("first run listed from %s, want the lookback (72h)", gte)
	}

	fake.Add(
		stripefake.Event{ID: "evt_late", Type: "invoice.paid", Created: cp.Add(-30 * time.Minute)},
		stripefake.Event{ID: "evt_before_window", Type: "invoice.paid", Created: cp.Add(-time.Hour - time.Second)},
		stripefake.Event{ID: "evt_new", Type: "invoice.paid"},
	)
	before := len(listRequests(fake))
	second, err := r.RunOnce(t.Context(), reconcile.Run{})
	if err != nil {
		t.Fatal(err)
	}
	if !second.Since.Equal(cp.Add(-time.Hour)) {
		t.Errorf("second run listed since %v, want the checkpoint less the overlap %v", second.Since, cp.Add(-time.Hour))
	}
	reqs := listRequests(fake)[before:]
	if len(reqs) != 1 || reqs[0].Query.Get("created[gte]") != strconv.FormatInt(cp.Add(-time.Hour).Unix(), 10) {
		t.Errorf("second run's requests %v, want one with created[gte]=%d", reqs, cp.Add(-time.Hour).Unix())
	}
	if want := (reconcile.Progress{Pages: 1, Seen: 2, Missing: 2, Stored: 2}); second.Progress != want {
		t.Errorf("second run %+v, want %+v", second.Progress, want)
	}
	src := sources(t, pool)
	if src["evt_late"] != "reconcile" || src["evt_new"] != "reconcile" {
		t.Errorf("late or new event not stored: %v", src)
	}
	if _, ok := src["evt_before_window"]; ok {
		t.Error("an event created before the window was stored")
	}
}

// TestSinceAfterTheCheckpointDoesNotMoveIt: a run from an explicit Since
// later than the checkpoint (receiver reconcile --since 10m) leaves the
// events between the two unlisted, so it must leave the checkpoint where
// it is; the next run from the checkpoint stores them.
func TestSinceAfterTheCheckpointDoesNotMoveIt(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	fake := stripefake.New(t, apiKey)
	now := time.Now().Truncate(time.Second)
	old := now.Add(-2 * time.Hour)
	setCheckpoint(t, pool, old)
	fake.Add(stripefake.Event{ID: "evt_unlisted", Type: "invoice.paid", Created: now.Add(-90 * time.Minute)},
		stripefake.Event{ID: "evt_recent", Type: "invoice.paid", Created: now.Add(-5 * time.Minute)})
	r := newReconciler(t, reconcile.Config{Lister: newClient(t, fake, apiKey), Pool: pool, Store: newStore(t, pool), Overlap: time.Hour})

	sum, err := r.RunOnce(t.Context(), reconcile.Run{Since: now.Add(-10 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Stored != 1 {
		t.Errorf("stored %d, want 1", sum.Stored)
	}
	if cp, _ := checkpoint(t, pool); !cp.Equal(old) {
		t.Fatalf("checkpoint moved from %v to %v past evt_unlisted, which no run listed", old, cp)
	}
	sum, err = r.RunOnce(t.Context(), reconcile.Run{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Stored != 1 || sources(t, pool)["evt_unlisted"] != "reconcile" {
		t.Errorf("the run from the checkpoint stored %d, want evt_unlisted", sum.Stored)
	}
	if cp, _ := checkpoint(t, pool); !cp.Equal(sum.Through) {
		t.Errorf("checkpoint %v, want the run's start %v", cp, sum.Through)
	}
}

// TestDryRunStoresNothingAndCountsProgress: a dry run (which needs no
// Store) counts pages, events seen and missing after every page, stores
// nothing and leaves no checkpoint; a real run then stores what it
// counted.
func TestDryRunStoresNothingAndCountsProgress(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	store := newStore(t, pool)
	fake := stripefake.New(t, apiKey)
	ids := addEvents(fake, "evt_dry", 250, time.Now(), "invoice.paid")
	for i := 0; i < len(ids); i += 5 { // a fifth already in the ledger
		ev, err := event.Parse(fake.Body(ids[i]))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.StoreOnce(t.Context(), &ev); err != nil {
			t.Fatal(err)
		}
	}
	lister := newClient(t, fake, apiKey)
	var got []reconcile.Progress
	dry := newReconciler(t, reconcile.Config{Lister: lister, Pool: pool})
	sum, err := dry.RunOnce(t.Context(), reconcile.Run{DryRun: true, Progress: func(p reconcile.Progress) { got = append(got, p) }})
	if err != nil {
		t.Fatal(err)
	}
	want := []reconcile.Progress{{Pages: 1, Seen: 100, Missing: 80}, {Pages: 2, Seen: 200, Missing: 160}, {Pages: 3, Seen: 250, Missing: 200}}
	if !equalProgress(got, want) || sum.Progress != want[2] {
		t.Errorf("dry run progress %+v (summary %+v), want %+v", got, sum.Progress, want)
	}
	if n := len(sources(t, pool)); n != 50 {
		t.Errorf("%d ledger rows after a dry run, want 50", n)
	}
	if _, ok := checkpoint(t, pool); ok {
		t.Error("a dry run set the checkpoint")
	}
	if _, err := dry.RunOnce(t.Context(), reconcile.Run{}); err == nil {
		t.Error("a run that stores without a Store did not fail")
	}

	got = nil
	r := newReconciler(t, reconcile.Config{Lister: lister, Pool: pool, Store: store})
	if _, err := r.RunOnce(t.Context(), reconcile.Run{Progress: func(p reconcile.Progress) { got = append(got, p) }}); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		want[i].Stored = want[i].Missing
	}
	if !equalProgress(got, want) {
		t.Errorf("run progress %+v, want %+v", got, want)
	}
	if n := len(sources(t, pool)); n != 250 {
		t.Errorf("%d ledger rows, want 250", n)
	}
}

func equalProgress(a, b []reconcile.Progress) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestListsOnlyUndeliveredUnlessAll: by default only the events Stripe
// failed to deliver are listed; All lists every event, under a checkpoint
// of its own.
func TestListsOnlyUndeliveredUnlessAll(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	store := newStore(t, pool)
	fake := stripefake.New(t, apiKey)
	fake.Add(stripefake.Event{ID: "evt_failed", Type: "invoice.paid"},
		stripefake.Event{ID: "evt_delivered", Type: "invoice.paid", DeliverySuccess: true})
	lister := newClient(t, fake, apiKey)

	if _, err := newReconciler(t, reconcile.Config{Lister: lister, Pool: pool, Store: store}).RunOnce(t.Context(), reconcile.Run{}); err != nil {
		t.Fatal(err)
	}
	if src := sources(t, pool); len(src) != 1 || src["evt_failed"] != "reconcile" {
		t.Errorf("default listing stored %v, want evt_failed", src)
	}
	all := newReconciler(t, reconcile.Config{Lister: lister, Pool: pool, Store: store, All: true})
	if _, err := all.RunOnce(t.Context(), reconcile.Run{}); err != nil {
		t.Fatal(err)
	}
	if src := sources(t, pool); len(src) != 2 || src["evt_delivered"] != "reconcile" {
		t.Errorf("All stored %v, want both", src)
	}
	if q := listRequests(fake)[1].Query; q.Has("delivery_success") {
		t.Errorf("All sent delivery_success=%s", q.Get("delivery_success"))
	}
	var n int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM stripe_webhook_reconcile_checkpoints`).Scan(&n); err != nil || n != 2 {
		t.Errorf("%d checkpoints (%v), want one per listing", n, err)
	}
}

// TestWebhookRacingTheReconcilerIsAcceptedOnce: webhooks and a run store
// the same 50 events at once; each is accepted by exactly one of them,
// stored once, and delivered once to its destination.
func TestWebhookRacingTheReconcilerIsAcceptedOnce(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	billing, crm, dests := twoDestinations()
	d := fastDelivery
	d.Destinations = dests
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Redis: rdb, KeyPrefix: prefix, Delivery: d})
	n := startNode(t, pool, rdb, prefix, dests)
	fake := stripefake.New(t, apiKey)
	types := []string{"invoice.paid", "customer.created"}
	ids := addEvents(fake, "evt_race", 50, time.Now(), types...)
	// The webhooks leave when the run has its page, so that they race its
	// ledger lookup and its inserts, which meet them half way.
	start := make(chan struct{})
	var once sync.Once
	lister := &watchedLister{next: newClient(t, fake, apiKey), afterPage: func() { once.Do(func() { close(start) }) }}
	r := newReconciler(t, reconcile.Config{Lister: lister, Pool: pool, Store: n.dedup, Enqueue: n.disp.Enqueue})

	var wg sync.WaitGroup
	var mu sync.Mutex
	hooksAccepted := 0
	for i, id := range ids {
		wg.Go(func() {
			<-start
			// The run stores in list order; these go from the other end.
			// Intended fault window: each webhook leaves 2ms after the
			// next one in list order, so that they meet the run half way.
			time.Sleep(time.Duration(len(ids)-1-i) * 2 * time.Millisecond)
			resp := harness.Post(t, in.URL, harness.EventBody(id, types[i%2]))
			if resp.Code != 200 {
				t.Errorf("%s: %d %s", id, resp.Code, resp.Body)
			}
			if strings.Contains(resp.Body, "accepted") {
				mu.Lock()
				hooksAccepted++
				mu.Unlock()
			}
		})
	}
	var sum reconcile.Summary
	var runErr error
	wg.Go(func() { sum, runErr = r.RunOnce(t.Context(), reconcile.Run{}) })
	wg.Wait()
	if runErr != nil {
		t.Fatal(runErr)
	}
	t.Logf("webhooks accepted %d, the run stored %d (missing %d)", hooksAccepted, sum.Stored, sum.Missing)
	if hooksAccepted+sum.Stored != len(ids) {
		t.Errorf("webhooks accepted %d and the run stored %d: want %d in all", hooksAccepted, sum.Stored, len(ids))
	}
	waitDelivered(t, pool, len(ids), 10*time.Second)
	n.settled(t) // nothing more may come
	var billed, crmed []string
	for i, id := range ids {
		if i%2 == 0 {
			billed = append(billed, id)
		} else {
			crmed = append(crmed, id)
		}
	}
	exactlyOnce(t, "billing", billing, billed)
	exactlyOnce(t, "crm", crm, crmed)
	rows := deliveryRows(t, pool)
	if len(rows) != len(ids) {
		t.Errorf("%d delivery rows, want one per event", len(rows))
	}
	for k, c := range rows {
		if c != 1 {
			t.Errorf("%s: %d delivery rows", k, c)
		}
	}
	reconciled := 0
	for _, s := range sources(t, pool) {
		if s == "reconcile" {
			reconciled++
		}
	}
	if reconciled != sum.Stored {
		t.Errorf("%d rows marked reconcile, want the %d the run stored", reconciled, sum.Stored)
	}
}

// TestCheckpointOlderThan30DaysMovesOn: after an outage longer than the
// Events API keeps events, a run lists the last 30 days (nothing older can
// be listed) and moves the checkpoint.
func TestCheckpointOlderThan30DaysMovesOn(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	fake := stripefake.New(t, apiKey)
	setCheckpoint(t, pool, time.Now().Add(-40*24*time.Hour))
	fake.Add(stripefake.Event{ID: "evt_29d", Type: "invoice.paid", Created: time.Now().Add(-29 * 24 * time.Hour)})
	r := newReconciler(t, reconcile.Config{Lister: newClient(t, fake, apiKey), Pool: pool, Store: newStore(t, pool)})
	sum, err := r.RunOnce(t.Context(), reconcile.Run{})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Since.Equal(sum.Through.Add(-reconcile.MaxLookback)) || sum.Stored != 1 {
		t.Errorf("run since %v stored %d, want since 30 days back, 1 stored", sum.Since, sum.Stored)
	}
	if cp, _ := checkpoint(t, pool); !cp.Equal(sum.Through) {
		t.Errorf("checkpoint %v, want the run's start %v", cp, sum.Through)
	}
}

// TestLongWindowGoesInSlices: a window longer than Slice is listed in
// slices of created time, oldest first, with created[lt] on all but the
// last; the checkpoint moves after each, so a run that fails in a later
// slice keeps the earlier ones.
func TestLongWindowGoesInSlices(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	fake := stripefake.New(t, apiKey)
	now := time.Now()
	for i := range 3 {
		fake.Add(stripefake.Event{ID: fmt.Sprintf("evt_slice_%d", i), Type: "invoice.paid", Created: now.Add(-time.Duration(50-20*i) * time.Hour)})
	}
	r := newReconciler(t, reconcile.Config{Lister: newClient(t, fake, apiKey), Pool: pool, Store: newStore(t, pool), Slice: 24 * time.Hour})
	sum, err := r.RunOnce(t.Context(), reconcile.Run{})
	if err != nil || sum.Stored != 3 || !sum.Checkpointed {
		t.Fatalf("run: %+v, %v", sum, err)
	}
	var lts []string
	for _, req := range fake.Requests() {
		lts = append(lts, req.Query.Get("created[lt]"))
	}
	if len(lts) != 3 || lts[0] == "" || lts[1] == "" || lts[2] != "" || lts[0] >= lts[1] {
		t.Fatalf("created[lt] of the requests: %q, want two rising bounds, then none", lts)
	}
}

// TestASliceOverThePageCapMovesTheCheckpointWithinIt: a slice holding more
// events than one listing may page through (a day of outage at 12
// events/s is over a million; here MaxSlicePages is 2, 200 events, and the
// slice holds 700) used to fail every run at the cap, and the checkpoint
// never passed it. Now the listing keeps what it listed (the newest
// events, every second after the oldest one it reached) and lists the
// rest in halves, oldest first, each moving the checkpoint: a run cut
// short inside the slice has moved the checkpoint into it, and the next
// run goes on from there and stores every event.
func TestASliceOverThePageCapMovesTheCheckpointWithinIt(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	fake := stripefake.New(t, apiKey)
	ids := addEvents(fake, "evt_cap", 700, time.Now().Add(-time.Minute), "invoice.paid")
	r := newReconciler(t, reconcile.Config{Lister: newClient(t, fake, apiKey), Pool: pool, Store: newStore(t, pool),
		Slice: 24 * time.Hour, MaxSlicePages: 2})

	// The first run is cut short (a 400 from Stripe) after its tenth page.
	sum, err := r.RunOnce(t.Context(), reconcile.Run{Progress: func(p reconcile.Progress) {
		if p.Pages == 10 {
			fake.FailNext(1, 400, "false")
		}
	}})
	if err == nil || sum.Pages != 10 {
		t.Fatalf("first run: %+v, %v; want it cut short after 10 pages", sum, err)
	}
	lastSlice := sum.Through.Add(-24 * time.Hour)
	cp, ok := checkpoint(t, pool)
	if !ok || !cp.After(lastSlice) || !cp.Before(sum.Through) {
		t.Fatalf("after a run cut short the checkpoint is %v (%v), want it inside the last slice [%v, %v)", cp, ok, lastSlice, sum.Through)
	}

	sum, err = r.RunOnce(t.Context(), reconcile.Run{})
	if err != nil || !sum.Checkpointed {
		t.Fatalf("second run: %+v, %v", sum, err)
	}
	if cp, _ := checkpoint(t, pool); !cp.Equal(sum.Through) {
		t.Errorf("checkpoint %v, want the second run's start %v", cp, sum.Through)
	}
	src := sources(t, pool)
	for _, id := range ids {
		if src[id] != "reconcile" {
			t.Fatalf("%s not stored by the reconciler (%d of %d stored)", id, len(src), len(ids))
		}
	}
}
