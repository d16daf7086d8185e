package console_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/oncehook/oncehook/console"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/testenv"
)

// The event page says that the order key of a dead ordered delivery
// skipped it, the key escaped as text, and says nothing of the kind for a
// delivered one or an unordered dead one.
func TestEventPageSaysTheOrderKeySkippedADeadDelivery(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO stripe_webhook_events (event_id, event_type, payload, status) VALUES
			('evt_skip', 'invoice.paid', '{"id":"evt_skip"}', 'routed')`,
		`INSERT INTO stripe_webhook_deliveries (event_id, destination, status, attempts, last_error, order_key, order_created) VALUES
			('evt_skip', 'billing', 'dead', 15, 'sink answered 500', $1, now()),
			('evt_skip', 'ledger', 'delivered', 1, NULL, $1, now()),
			('evt_skip', 'crm', 'dead', 15, 'sink answered 500', NULL, NULL)`,
	} {
		var args []any
		if strings.Contains(q, "$1") {
			args = append(args, hostileImg)
		}
		if _, err := pool.Exec(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	health := func(context.Context) console.Health { return console.Health{Postgres: "ok", Redis: "disabled"} }
	c, err := console.New(console.Config{Token: testToken, Pool: pool, Metrics: metrics.New().Registry, Health: health,
		Destinations: []string{"billing", "ledger", "crm"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	cl := client(t)
	signIn(t, cl, srv.URL)
	p := get(t, cl, srv.URL+"/console/events/evt_skip")
	want := `<tr class="key-skipped"><td></td><td colspan="6">order key &#34;\&#34;&gt;&lt;img src=x onerror=alert(\&#34;xss-img\&#34;)&gt;&#34; skipped it: the key&#39;s later events go on without it</td></tr>`
	if p.code != 200 || !strings.Contains(p.body, want) || strings.Count(p.body, "skipped it") != 1 || strings.Contains(p.body, "<img") {
		t.Fatalf("event page: %d; want one note, for billing, the key escaped:\n%s", p.code, p.body)
	}
	if i, j := strings.Index(p.body, ">billing<"), strings.Index(p.body, "key-skipped"); i < 0 || j < i || strings.Contains(p.body[i:j], ">ledger<") || strings.Contains(p.body[i:j], ">crm<") {
		t.Errorf("the note is not right below billing's row:\n%s", p.body)
	}
}
