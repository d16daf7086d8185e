package delivery_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/oncehook/oncehook/admin"
	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/store"
)

// liveBody is EventBody in live mode.
func liveBody(id, typ string) []byte {
	return bytes.Replace(harness.EventBody(id, typ), []byte(`"livemode": false`), []byte(`"livemode": true`), 1)
}

func statesOf(t *testing.T, in *harness.Instance, id string) []string {
	t.Helper()
	return queryStrings(t, in, `SELECT destination || '=' || status FROM stripe_webhook_deliveries WHERE event_id = $1 ORDER BY destination`, id)
}

// queryStrings returns the one text column of sql's rows.
func queryStrings(t *testing.T, in *harness.Instance, sql string, args ...any) []string {
	t.Helper()
	rows, err := in.Pool().Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRoutingByTypeAndLivemode: each event reaches exactly the
// destinations whose filter matches (type patterns, livemode), once; an
// event that matches none is stored, answered accepted, has no delivery
// and is listed as unrouted.
func TestRoutingByTypeAndLivemode(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	billing, crm, live := harness.NewRecordingSink(), harness.NewRecordingSink(), harness.NewRecordingSink()
	cfg := fastRetries
	cfg.Destinations = []delivery.Destination{
		{Name: "billing", Sink: billing, Filter: route.Filter{Types: []string{"invoice.*", "charge.refunded"}}},
		{Name: "crm", Sink: crm, Filter: route.Filter{Types: []string{"customer.*"}, Livemode: route.Test}},
		{Name: "live-all", Sink: live, Filter: route.Filter{Livemode: route.Live}},
	}
	watched, sweeps := watchSweeps(t, pool)
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: watched, Delivery: cfg})
	events := []struct {
		id, typ string
		live    bool
		want    []string
	}{
		{"evt_rt_inv", "invoice.paid", false, []string{"billing"}},
		{"evt_rt_inv_live", "invoice.payment_failed", true, []string{"billing", "live-all"}},
		{"evt_rt_refund", "charge.refunded", false, []string{"billing"}},
		{"evt_rt_charge", "charge.succeeded", false, nil},
		{"evt_rt_cust", "customer.created", false, []string{"crm"}},
		{"evt_rt_cust_live", "customer.created", true, []string{"live-all"}},
		{"evt_rt_item", "invoiceitem.created", false, nil},
	}
	for _, e := range events {
		body := harness.EventBody(e.id, e.typ)
		if e.live {
			body = liveBody(e.id, e.typ)
		}
		if r := harness.Post(t, in.URL, body); r.Code != 200 || !strings.Contains(r.Body, "accepted") {
			t.Fatalf("%s: %d %s", e.id, r.Code, r.Body)
		}
	}
	sinks := map[string]*harness.RecordingSink{"billing": billing, "crm": crm, "live-all": live}
	want := map[string][]string{}
	for _, e := range events {
		for _, d := range e.want {
			want[d] = append(want[d], e.id)
		}
	}
	for name, s := range sinks {
		s.WaitFor(t, 10*time.Second, func(c map[string]int) bool { return len(c) >= len(want[name]) })
	}
	// Nothing more may come: every sweeper has had its chances. The
	// instance keeps running, for the duplicate posted below.
	sweeps.settle(t, slices.Collect(maps.Keys(sinks)))
	for name, s := range sinks {
		got := s.Counts()
		var ids []string
		for id, n := range got {
			if n != 1 {
				t.Errorf("%s got %s %d times", name, id, n)
			}
			ids = append(ids, id)
		}
		slices.Sort(ids)
		slices.Sort(want[name])
		if !slices.Equal(ids, want[name]) {
			t.Errorf("%s got %v, want %v", name, ids, want[name])
		}
	}
	for _, e := range events {
		var wantStates []string
		for _, d := range e.want {
			wantStates = append(wantStates, d+"=delivered")
		}
		slices.Sort(wantStates)
		if got := statesOf(t, in, e.id); !slices.Equal(got, wantStates) {
			t.Errorf("%s: deliveries %v, want %v", e.id, got, wantStates)
		}
	}
	unrouted, err := listDeliveries(context.Background(), pool, admin.ListParams{Status: store.StatusUnrouted})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range unrouted {
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"evt_rt_charge", "evt_rt_item"}) {
		t.Errorf("unrouted events listed: %v, want evt_rt_charge and evt_rt_item", ids)
	}
	if r := harness.Post(t, in.URL, harness.EventBody("evt_rt_charge", "charge.succeeded")); !strings.Contains(r.Body, "duplicate") {
		t.Errorf("a copy of an unrouted event: %d %s, want duplicate", r.Code, r.Body)
	}
}

// TestDownDestinationDoesNotHoldUpTheOthers: one destination hangs on
// every call until its timeout. The others receive every event of a storm
// exactly once, as fast as their own workers go: with one shared queue
// they would wait about events × timeout ÷ workers (minutes).
func TestDownDestinationDoesNotHoldUpTheOthers(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	crm, analytics := harness.NewRecordingSink(), harness.NewRecordingSink()
	var hung sync.Map
	down := funcSink(func(ctx context.Context, ev *event.Event) error {
		hung.Store(ev.ID, true)
		<-ctx.Done()
		return ctx.Err()
	})
	cfg := fastRetries
	cfg.Workers = 4
	cfg.Destinations = []delivery.Destination{
		{Name: "billing", Sink: down, DeliveryTimeout: 2 * time.Second},
		{Name: "crm", Sink: crm},
		{Name: "analytics", Sink: analytics},
	}
	var urls []string
	for range 2 {
		urls = append(urls, harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Delivery: cfg}).URL)
	}
	start := time.Now()
	ids := postMany(t, urls, "evt_iso", 400)
	for name, s := range map[string]*harness.RecordingSink{"crm": crm, "analytics": analytics} {
		s.WaitFor(t, 15*time.Second, func(c map[string]int) bool { return len(c) == len(ids) })
		exactlyOnce(t, s, ids)
		t.Logf("%s had all %d events %s after the storm began", name, len(ids), time.Since(start).Round(time.Millisecond))
	}
	n := 0
	hung.Range(func(any, any) bool { n++; return true })
	if n == 0 {
		t.Fatal("billing was never called: the test proved nothing")
	}
	var pending int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM stripe_webhook_deliveries WHERE destination = 'billing' AND status = 'pending'`).Scan(&pending); err != nil || pending != len(ids) {
		t.Fatalf("billing has %d pending deliveries (%v), want all %d kept", pending, err, len(ids))
	}
}

// TestRetriesDeadLettersAndReplayPerDestination: a failing destination
// retries, then dead-letters, on its own attempt count while another
// destination delivers at once; replay for that destination alone sends
// it again, and nothing to the other.
func TestRetriesDeadLettersAndReplayPerDestination(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ok := harness.NewRecordingSink()
	failing, isDown := downSink(errors.New("billing answered 500"))
	cfg := fastRetries
	cfg.Destinations = []delivery.Destination{
		{Name: "billing", Sink: failing, MaxAttempts: 3},
		{Name: "analytics", Sink: ok, MaxAttempts: 50},
	}
	watched, sweeps := watchSweeps(t, pool)
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: watched, Delivery: cfg})
	ids := postMany(t, []string{in.URL}, "evt_pd", 5)
	ok.WaitFor(t, 10*time.Second, func(c map[string]int) bool { return len(c) == len(ids) })
	var dead []admin.EventRow
	eventually.Require(t, 10*time.Second, "every billing delivery dead", func() bool {
		var err error
		dead, err = listDeliveries(context.Background(), pool, admin.ListParams{Status: store.StatusDead, Destination: "billing"})
		if err != nil {
			t.Fatal(err)
		}
		return len(dead) == len(ids)
	}, func() string { return fmt.Sprintf("%d of %d dead", len(dead), len(ids)) })
	for _, r := range dead {
		if r.Attempts != 3 || r.LastError != "billing answered 500" || r.Destination != "billing" {
			t.Fatalf("dead delivery %+v, want billing after 3 attempts", r)
		}
	}
	ev, err := store.New(pool).ShowEvent(context.Background(), ids[0])
	if err != nil {
		t.Fatal(err)
	}
	perDest := map[string]int{}
	for _, a := range ev.History {
		perDest[a.Destination]++
	}
	if perDest["billing"] != 3 || perDest["analytics"] != 1 {
		t.Fatalf("history per destination %v, want billing 3 and analytics 1", perDest)
	}

	isDown.Store(false)
	n, err := replayStatus(context.Background(), pool, store.StatusDead, "analytics")
	if err != nil || n != 0 {
		t.Fatalf("replaying analytics' dead: %d, %v; want none", n, err)
	}
	n, err = replayStatus(context.Background(), pool, store.StatusDead, "billing")
	if err != nil || n != int64(len(ids)) {
		t.Fatalf("replaying billing's dead: %d, %v; want %d", n, err, len(ids))
	}
	failing.WaitFor(t, 10*time.Second, func(c map[string]int) bool { return len(c) == len(ids) })
	// Nothing more may come; the instance keeps running for statesOf below.
	sweeps.settle(t, []string{"billing", "analytics"})
	exactlyOnce(t, failing, ids)
	exactlyOnce(t, ok, ids) // analytics got nothing again
	if got := statesOf(t, in, ids[0]); !slices.Equal(got, []string{"analytics=delivered", "billing=delivered"}) {
		t.Fatalf("after the replay: %v", got)
	}
}

// TestRemovedDestinationWaitsAndResumes: deliveries of a destination no
// longer configured stay pending and untouched; an instance configured
// with it again delivers them.
func TestRemovedDestinationWaitsAndResumes(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	crm := harness.NewRecordingSink()
	crm.Fail = func(*event.Event) error { return harness.ErrSinkDown }
	cfg := fastRetries
	cfg.Destinations = []delivery.Destination{{Name: "crm", Sink: crm}}
	first := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Delivery: cfg})
	ids := postMany(t, []string{first.URL}, "evt_rm", 10)
	first.Stop()
	before := fmt.Sprint(snapshotDeliveries(t, first, "crm"))

	// crm is removed from the config: an instance without it leaves its deliveries alone.
	other := harness.NewRecordingSink()
	cfg.Destinations = []delivery.Destination{{Name: "analytics", Sink: other}}
	watched, sweeps := watchSweeps(t, pool)
	second := harness.StartInstance(t, harness.InstanceConfig{Pool: watched, Delivery: cfg})
	sweeps.waitSweeps(t, "analytics", 10) // many sweeps
	if after := fmt.Sprint(snapshotDeliveries(t, second, "crm")); after != before {
		t.Fatalf("an instance without crm touched its deliveries:\nbefore %s\nafter  %s", before, after)
	}
	names, err := store.New(pool).DestinationsWith(context.Background(), store.StatusPending)
	if err != nil || !slices.Equal(names, []string{"crm"}) {
		t.Fatalf("PendingDestinations: %v, %v; want crm", names, err)
	}
	second.Stop()

	// crm comes back.
	back := harness.NewRecordingSink()
	cfg.Destinations = []delivery.Destination{{Name: "crm", Sink: back}}
	harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Delivery: cfg})
	back.WaitFor(t, 10*time.Second, func(c map[string]int) bool { return len(c) == len(ids) })
	exactlyOnce(t, back, ids)
	if len(other.Counts()) != 0 {
		t.Fatalf("analytics got events stored before it was configured: %v", other.Counts())
	}
}

func snapshotDeliveries(t *testing.T, in *harness.Instance, dest string) []string {
	t.Helper()
	return queryStrings(t, in, `SELECT format('%s|%s|%s|%s|%s', event_id, status, attempts, next_attempt_at, locked_until)
		FROM stripe_webhook_deliveries WHERE destination = $1 ORDER BY event_id`, dest)
}
