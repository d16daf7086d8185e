package failover

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/service"
	"github.com/oncehook/oncehook/internal/stripefake"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/store"
)

// commitBound is dedup.Config's default CommitTimeout, which the
// instances keep: a commit still waiting for the standby then is answered
// 503.
const commitBound = 5 * time.Second

// syncLease is the instances' DELIVERY_LEASE in the synchronous test: the
// longest a stored event waits for its delivery after its instance lost
// the commit's answer (the default is a minute; it must exceed the sink's
// 2 s timeout by 10 s).
const syncLease = 15 * time.Second

// TestSyncFailoverLosesNothingAcknowledged runs the storm against a
// synchronous pair, holding replication back longer than the commit bound
// before the crash. Postgres has then committed the waiting batches
// locally ("canceling wait for synchronous replication ... already
// committed locally"), and they must be answered 503, not 200: the
// promoted standby never got them. Nothing acknowledged may be missing
// from the promoted primary, every event reaches the sink, the outage is
// answered with 503s only, 200s come back within 20 s of the promotion,
// and the background work recovers on the new primary by itself: result
// writes (every delivery reaches delivered), the reconciler (its leader
// lock taken again, it stores an event only Stripe's API lists) and the
// pruner (it deletes an old delivered event).
//
// A commit that reached the standby but whose answer the crash took (the
// hold stopped the standby's reply, not its WAL) is answered 503, and
// Stripe's retry 200 duplicate: its delivery is made once its lease ends,
// by a sweeper. The lease is shortened here from the default minute.
func TestSyncFailoverLosesNothingAcknowledged(t *testing.T) {
	r := failoverStorm(t, stormOptions{Mode: testenv.Sync, Hold: commitBound + time.Second,
		Tune: func(c *service.Config) { c.DeliveryLease = syncLease }})
	t.Log(r.Summary(t))

	if len(r.LostAtPromotion) > 0 {
		t.Errorf("%d events answered 200 before the crash are missing from the promoted primary, e.g. %v",
			len(r.LostAtPromotion), r.LostAtPromotion[:min(5, len(r.LostAtPromotion))])
	}
	if missing := r.MissingNow(t); len(missing) > 0 {
		t.Errorf("%d acknowledged events are missing from the promoted primary, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	if n := r.UnavailableWhileHeld(); n == 0 {
		t.Errorf("no 503 while replication was held for %s: a commit waiting past the commit bound (%s) must be answered 503",
			r.CrashAt.Sub(r.HeldAt), commitBound)
	}
	if okHeld := r.count(func(a answer) bool {
		return a.Code == 200 && a.Sent.After(r.HeldAt.Add(100*time.Millisecond)) && a.Got.Before(r.CrashAt)
	}); okHeld > 0 {
		t.Errorf("%d requests sent while replication was held were answered 200: a synchronous commit cannot have returned", okHeld)
	}
	requireOutageAnswered(t, r)
	start := time.Now()
	requireAllDelivered(t, r, syncLease+10*time.Second)
	requireRecovered(t, r)
	again := 0
	for _, n := range r.Sink.Counts() {
		again += n - 1
	}
	t.Logf("failover sync: every event at the sink and every background part recovered %.1fs after the storm; "+
		"deliveries made more than once (at least once: a result lost in the crash) %d", time.Since(start).Seconds(), again)
}

// TestAsyncFailoverHealsItself runs the storm against an asynchronous
// pair, holding replication back for 2 s before the crash: hundreds of
// the commits of those 2 s were answered 200 and are not on the promoted
// standby (which shows the hold works). The instances answer the outage
// with 503s only and come back within 20 s; then they notice the new
// timeline, record the failover once, and, with STRIPE_API_KEY, list the
// failover's window from the Events API, delivered events included, so
// that every acknowledged event is back in the ledger and delivered,
// without an operator.
func TestAsyncFailoverHealsItself(t *testing.T) {
	r := failoverStorm(t, stormOptions{Mode: testenv.Async})
	t.Log(r.Summary(t))

	if len(r.LostAtPromotion) < 100 {
		t.Errorf("%d events answered 200 before the crash are missing from the promoted primary, want hundreds: "+
			"replication was not held back", len(r.LostAtPromotion))
	}
	requireOutageAnswered(t, r)

	ctx := t.Context()
	var fos []store.Failover
	eventually.Require(t, 60*time.Second, "the failover to be recorded and healed", func() bool {
		var err error
		fos, err = store.New(r.Promoted).Failovers(ctx)
		return err == nil && len(fos) > 0 && !fos[0].HealedAt.IsZero()
	}, func() string { return fmt.Sprintf("failovers %+v", fos) })
	if len(fos) != 1 {
		t.Fatalf("%d failovers recorded for one promotion: %+v", len(fos), fos)
	}
	fo := fos[0]
	if fo.NewTimeline <= fo.OldTimeline {
		t.Errorf("failover from timeline %d to %d", fo.OldTimeline, fo.NewTimeline)
	}
	if missing := r.MissingNow(t); len(missing) > 0 {
		t.Errorf("healed, yet %d acknowledged events are missing from the promoted primary, e.g. %v",
			len(missing), missing[:min(5, len(missing))])
	}
	if fo.Recovered < int64(len(r.LostAtPromotion)) {
		t.Errorf("the heal recovered %d events, fewer than the %d lost at promotion", fo.Recovered, len(r.LostAtPromotion))
	}
	acked := make([]string, 0, len(r.Acked))
	for id := range r.Acked {
		acked = append(acked, id)
	}
	r.Sink.WaitFor(t, 60*time.Second, func(c map[string]int) bool {
		for _, id := range acked {
			if c[id] == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("failover async healed: lost at promotion %d, recovered %d, detected %.2fs and healed %.2fs after the promotion",
		len(r.LostAtPromotion), fo.Recovered, fo.DetectedAt.Sub(r.PromotedAt).Seconds(), fo.HealedAt.Sub(r.PromotedAt).Seconds())
}

// requireOutageAnswered checks the answers around the failover: 503s,
// never a 4xx, no 200 while no primary was there, and 200s again within
// 20 s of the promotion.
func requireOutageAnswered(t *testing.T, r *stormResult) {
	t.Helper()
	if n := r.ClientErrors(); n > 0 {
		t.Errorf("%d answers were 4xx; the outage must be answered 503", n)
	}
	if down := r.count(func(a answer) bool { return a.Code == 200 && a.Sent.After(r.CrashedAt) && a.Got.Before(r.PromoteAt) }); down > 0 {
		t.Errorf("%d requests sent with no primary were answered 200", down)
	}
	if down := r.count(func(a answer) bool { return a.Code == 503 && a.Sent.After(r.CrashedAt) && a.Got.Before(r.PromoteAt) }); down == 0 {
		t.Error("no request sent with no primary was answered 503: the storm did not outlast the crash")
	}
	if d := r.FirstOKAfterPromotion(); d < 0 || d > 20*time.Second {
		t.Errorf("the first 200 came %s after the promotion, want within 20s", d)
	}
}

// requireRecovered checks that the background work runs on the promoted
// primary: every delivery of the ledger reaches delivered (the result
// writes), the reconciler stores and delivers an event only Stripe's API
// lists, and the pruner deletes an old delivered event.
func requireRecovered(t *testing.T, r *stormResult) {
	t.Helper()
	ctx := t.Context()
	pool := r.Promoted
	var open int
	eventually.Require(t, 30*time.Second, "every delivery on the promoted primary to be delivered", func() bool {
		err := pool.QueryRow(ctx, `SELECT count(*) FROM stripe_webhook_deliveries WHERE status <> $1`, store.StatusDelivered).Scan(&open)
		return err == nil && open == 0
	}, func() string { return fmt.Sprintf("%d deliveries not delivered", open) })

	id := "evt_failover_reconciled_" + testenv.RandomHex(4)
	r.Stripe.Add(stripefake.Event{ID: id, Type: "invoice.paid", Created: time.Now()})
	r.Sink.WaitFor(t, 20*time.Second, func(c map[string]int) bool { return c[id] > 0 })

	old := "evt_failover_old_" + testenv.RandomHex(4)
	if _, err := pool.Exec(ctx, `WITH e AS (INSERT INTO stripe_webhook_events (event_id, event_type, payload, status, received_at)
		VALUES ($1, 'invoice.paid', '{}', 'routed', now() - interval '800 hours') RETURNING event_id, received_at)
		INSERT INTO stripe_webhook_deliveries (event_id, destination, status, received_at) SELECT event_id, $2, $3, received_at FROM e`,
		old, route.DefaultName, store.StatusDelivered); err != nil {
		t.Fatal(err)
	}
	eventually.Require(t, 20*time.Second, "the pruner to delete an old delivered event on the promoted primary", func() bool {
		var n int
		err := pool.QueryRow(context.Background(), `SELECT count(*) FROM stripe_webhook_events WHERE event_id = $1`, old).Scan(&n)
		return err == nil && n == 0
	})
}

// requireAllDelivered waits until the sink has every event of the storm,
// and else names those it lacks, with their answers and delivery rows.
func requireAllDelivered(t *testing.T, r *stormResult, timeout time.Duration) {
	t.Helper()
	var undelivered []string
	eventually.Require(t, timeout, "every event of the storm at the sink", func() bool {
		c := r.Sink.Counts()
		undelivered = undelivered[:0]
		for _, id := range r.IDs {
			if c[id] == 0 {
				undelivered = append(undelivered, id)
			}
		}
		return len(undelivered) == 0
	}, func() string { return r.describe(t, undelivered) })
}
