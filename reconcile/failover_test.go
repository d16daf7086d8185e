package reconcile_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/stripefake"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/reconcile"
	"github.com/oncehook/oncehook/store"
	"github.com/oncehook/oncehook/stripeapi"
)

// dyingLister answers n listings, then fails as a leader that dies would
// stop: with an error that is not retried.
type dyingLister struct {
	reconcile.Lister
	n int
}

func (l *dyingLister) ListEvents(ctx context.Context, p stripeapi.ListParams) (stripeapi.Page, error) {
	if l.n--; l.n < 0 {
		return stripeapi.Page{}, errors.New("the leader died")
	}
	return l.Lister.ListEvents(ctx, p)
}

// TestHealerResumesFromTheFailoversCheckpoint: a failover is recorded;
// its window holds events Stripe counts as delivered, every other one
// missing from the ledger. A healer that dies after four slices leaves
// the checkpoint and the count of what it stored in the failover's row;
// another healer goes on from the checkpoint (its first listing starts
// there), stores the rest, and marks the failover healed with the count
// of every event recovered, each stored once.
func TestHealerResumesFromTheFailoversCheckpoint(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ctx := context.Background()
	fake := stripefake.New(t, apiKey)
	dd := newStore(t, pool)
	now := time.Now().Truncate(time.Second)
	var lost []string
	for i := range 40 { // one a minute, the newest a minute ago
		id := fmt.Sprintf("evt_heal_%02d", i)
		created := now.Add(-time.Duration(40-i) * time.Minute)
		fake.Add(stripefake.Event{ID: id, Type: "invoice.paid", Created: created, DeliverySuccess: true})
		if i%2 == 1 {
			lost = append(lost, id)
			continue
		}
		ev := &event.Event{ID: id, Type: "invoice.paid", Created: created, APIVersion: stripefake.DefaultAPIVersion, Payload: fake.Body(id)}
		if _, err := dd.StoreOnce(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	w := store.FailoverWindow{Overlap: time.Hour, Margin: time.Minute}
	if _, _, err := store.ObserveTimeline(ctx, pool, 1, w); err != nil {
		t.Fatal(err)
	}
	f, recorded, err := store.ObserveTimeline(ctx, pool, 2, w)
	if err != nil || !recorded {
		t.Fatalf("recording the failover: %v, %v", recorded, err)
	}
	client := newClient(t, fake, apiKey)
	heal := func(l reconcile.Lister, m *metrics.Metrics) ([]store.Failover, error) {
		h, err := reconcile.NewHealer(reconcile.HealerConfig{Lister: l, Pool: pool, Store: dd, Slice: 10 * time.Minute,
			RetryBase: time.Millisecond, PageInterval: time.Millisecond, Logger: quiet, Metrics: m})
		if err != nil {
			t.Fatal(err)
		}
		return h.HealOnce(ctx)
	}
	first := metrics.New()
	if healed, err := heal(&dyingLister{Lister: client, n: 4}, first); err == nil || len(healed) != 0 {
		t.Fatalf("the dying healer: %+v, %v; want an error", healed, err)
	}
	mid, err := store.New(pool).UnhealedFailovers(ctx)
	if err != nil || len(mid) != 1 {
		t.Fatalf("unhealed after the first healer died: %+v, %v", mid, err)
	}
	if want := f.WindowStart.Add(40 * time.Minute); !mid[0].ListedThrough.Equal(want) {
		t.Fatalf("checkpoint %s after four slices, want %s", mid[0].ListedThrough, want)
	}
	if mid[0].Recovered == 0 || mid[0].Recovered >= int64(len(lost)) {
		t.Fatalf("recovered %d by the first healer, want some of the %d", mid[0].Recovered, len(lost))
	}
	if got := counter(t, first, "oncehook_failover_recovered_events_total", ""); got != float64(mid[0].Recovered) {
		t.Fatalf("the first healer counted %v, its row says %d", got, mid[0].Recovered)
	}
	before := len(fake.Requests())
	healed, err := heal(client, metrics.New())
	if err != nil || len(healed) != 1 {
		t.Fatalf("the second healer: %+v, %v", healed, err)
	}
	if got := healed[0]; got.Recovered != int64(len(lost)) || got.HealedAt.IsZero() || !got.ListedThrough.Equal(got.WindowEnd) {
		t.Fatalf("healed %+v; want %d recovered, listed to the window's end", got, len(lost))
	}
	reqs := fake.Requests()[before:]
	if len(reqs) == 0 || reqs[0].Query.Get("created[gte]") != fmt.Sprint(mid[0].ListedThrough.Unix()) {
		first := ""
		if len(reqs) > 0 {
			first = reqs[0].RawQuery
		}
		t.Fatalf("the second healer's first listing %q; want it from the checkpoint, created[gte]=%d", first, mid[0].ListedThrough.Unix())
	}
	for _, id := range lost {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM stripe_webhook_events WHERE event_id = $1 AND source = 'reconcile'`, id).Scan(&n); err != nil || n != 1 {
			t.Fatalf("lost event %s stored %d times by the heal (%v)", id, n, err)
		}
	}
	if again, err := heal(client, nil); err != nil || len(again) != 0 {
		t.Fatalf("a third healer found %+v, %v; want nothing left", again, err)
	}
}

// TestHealerKeepsToItsTypesAndToWhatTheLedgerKeeps: a failover whose
// window reaches three hours back; Stripe lists, none of them in the
// ledger, invoice events and customer events in the last half hour and
// an invoice event of 150 minutes ago. A healer with Types (RECONCILE_TYPES)
// invoice.paid and MaxAge two hours stores the recent invoice events
// only: not the customer events, which this deployment was never sent,
// and not the old one, which may have been delivered and pruned.
func TestHealerKeepsToItsTypesAndToWhatTheLedgerKeeps(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ctx := context.Background()
	fake := stripefake.New(t, apiKey)
	dd := newStore(t, pool)
	now := time.Now().Truncate(time.Second)
	want := map[string]bool{}
	for i := range 3 {
		id := fmt.Sprintf("evt_keep_inv_%d", i)
		fake.Add(stripefake.Event{ID: id, Type: "invoice.paid", Created: now.Add(-time.Duration(10+i) * time.Minute), DeliverySuccess: true})
		want[id] = true
		fake.Add(stripefake.Event{ID: fmt.Sprintf("evt_keep_cus_%d", i), Type: "customer.created",
			Created: now.Add(-time.Duration(10+i) * time.Minute), DeliverySuccess: true})
	}
	fake.Add(stripefake.Event{ID: "evt_keep_old", Type: "invoice.paid", Created: now.Add(-150 * time.Minute), DeliverySuccess: true})
	w := store.FailoverWindow{Overlap: 3 * time.Hour, Margin: time.Minute}
	if _, _, err := store.ObserveTimeline(ctx, pool, 1, w); err != nil {
		t.Fatal(err)
	}
	if _, recorded, err := store.ObserveTimeline(ctx, pool, 2, w); err != nil || !recorded {
		t.Fatalf("recording the failover: %v, %v", recorded, err)
	}
	h, err := reconcile.NewHealer(reconcile.HealerConfig{Lister: newClient(t, fake, apiKey), Pool: pool, Store: dd,
		Types: []string{"invoice.paid"}, MaxAge: 2 * time.Hour,
		RetryBase: time.Millisecond, PageInterval: time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	healed, err := h.HealOnce(ctx)
	if err != nil || len(healed) != 1 || healed[0].Recovered != int64(len(want)) {
		t.Fatalf("healed %+v, %v; want one failover, %d recovered", healed, err, len(want))
	}
	rows, err := pool.Query(ctx, `SELECT event_id FROM stripe_webhook_events`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		if !want[id] {
			t.Errorf("the heal stored %s", id)
		}
		delete(want, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(want) > 0 {
		t.Errorf("not stored: %v", want)
	}
}
