package bench

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/testenv"
)

// TestFillIsALedgerThePrunerPrunes fills a migrated schema twice, checks
// every row is what the receiver would have left after delivering the
// event (payloads it accepts, whose id, type and created match their
// columns), then lets the pruner delete and a ledger probe count it.
func TestFillIsALedgerThePrunerPrunes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Postgres(t)
	var schema string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(testenv.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db := u.String()

	dests := []string{"default", "b"}
	for _, n := range []int64{3000, 1000} {
		st, err := Fill(ctx, FillConfig{DatabaseURL: db, Events: n, Destinations: dests, Chunk: 700})
		if err != nil {
			t.Fatal(err)
		}
		if st.Events != n || st.InsertSeconds <= 0 || st.LedgerBytes <= 0 {
			t.Fatalf("fill stats %+v", st)
		}
	}

	var events, routed, oldest, newest, deliveries, delivered, sameTime, attempts, ok int64
	err = pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 'routed'),
			count(*) FILTER (WHERE received_at < now() - interval '29 days'),
			count(*) FILTER (WHERE received_at > now() - interval '1 day'),
			(SELECT count(*) FROM stripe_webhook_deliveries),
			(SELECT count(*) FROM stripe_webhook_deliveries WHERE status = 'delivered' AND attempts = 1 AND delivered_at IS NOT NULL),
			(SELECT count(*) FROM stripe_webhook_deliveries d JOIN stripe_webhook_events e USING (event_id) WHERE d.received_at = e.received_at),
			(SELECT count(*) FROM stripe_webhook_delivery_attempts),
			(SELECT count(*) FROM stripe_webhook_delivery_attempts a
				WHERE ok AND EXISTS (SELECT 1 FROM stripe_webhook_deliveries d WHERE (d.event_id, d.destination) = (a.event_id, a.destination)))
		FROM stripe_webhook_events WHERE received_at <= now() AND received_at >= now() - interval '30 days 1 minute'`).
		Scan(&events, &routed, &oldest, &newest, &deliveries, &delivered, &sameTime, &attempts, &ok)
	if err != nil {
		t.Fatal(err)
	}
	if events != 4000 || routed != events || deliveries != 2*events || delivered != deliveries ||
		sameTime != deliveries || attempts != deliveries || ok != attempts {
		t.Fatalf("%d events in the last 30 days (%d routed), %d deliveries (%d delivered once, %d with the event's received_at), %d attempts (%d ok)",
			events, routed, deliveries, delivered, sameTime, attempts, ok)
	}
	if oldest < 80 || oldest > 200 || newest < 80 || newest > 200 {
		t.Fatalf("%d events in the oldest day, %d in the newest: want about 133 each, evenly spread", oldest, newest)
	}

	rows, err := pool.Query(ctx, `SELECT event_id, event_type, coalesce(account, ''), coalesce(api_version, ''), stripe_created, payload
		FROM stripe_webhook_events`)
	if err != nil {
		t.Fatal(err)
	}
	var id, typ, account, version string
	var created time.Time
	var payload []byte
	large, thin := 0, 0
	_, err = pgx.ForEachRow(rows, []any{&id, &typ, &account, &version, &created, &payload}, func() error {
		ev, err := event.Parse(payload)
		if err != nil {
			t.Fatalf("%s: the receiver rejects its payload: %v", id, err)
		}
		if ev.ID != id || ev.Type != typ || ev.Account != account || ev.APIVersion != version || !ev.Created.Equal(created) {
			t.Fatalf("%s: columns %s %q %q %s, payload %s %s %q %q %s", id, typ, account, version, created,
				ev.ID, ev.Type, ev.Account, ev.APIVersion, ev.Created)
		}
		if len(payload) > 16<<10 {
			large++
		}
		if ev.Thin {
			thin++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if large < 120 || large > 280 || thin < 40 || thin > 130 {
		t.Fatalf("%d large and %d thin payloads of 4000: want about 5%% and 2%%", large, thin)
	}

	probe, err := openLedgerProbe(ctx, LedgerConfig{DatabaseURL: db, Filled: 4000, Retention: 72 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer probe.close()
	if left, err := probe.backlog(ctx); err != nil || !left {
		t.Fatalf("backlog before pruning: %v, %v", left, err)
	}
	// The fill's backends publish their inserts as they exit.
	var ins int64
	eventually.Require(t, 10*time.Second, "the statistics to show the fill's 4000 inserts", func() bool {
		var err error
		if ins, _, _, err = probe.counters(ctx); err != nil {
			t.Fatal(err)
		}
		return ins >= 4000
	}, func() string { return fmt.Sprintf("they show %d", ins) })
	if err := probe.open(ctx); err != nil {
		t.Fatal(err)
	}
	pp := testenv.AnotherPool(t, pool)
	pruner, err := delivery.NewPruner(delivery.PrunerConfig{Pool: pp, Retention: 72 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	pruned, err := pruner.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pruned < 3500 || pruned > 3700 {
		t.Fatalf("pruned %d of 4000 events over 30 days with 3 days' retention: want about 90%%", pruned)
	}
	pp.Close() // its backends publish their statistics as they exit
	var w *LedgerWindow
	eventually.Within(10*time.Second, func() bool {
		if w, err = probe.shut(ctx); err != nil {
			t.Fatal(err)
		}
		return w.Deleted == pruned
	})
	if w.Deleted != pruned || w.Inserted != 0 || w.BacklogLeft || !w.Pruning || w.Filled != 4000 {
		t.Fatalf("window %+v after pruning %d", w, pruned)
	}
	var left int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM stripe_webhook_deliveries) + (SELECT count(*) FROM stripe_webhook_delivery_attempts)`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 4*(4000-pruned) {
		t.Fatalf("%d deliveries and attempts left of %d events", left, 4000-pruned)
	}
}
