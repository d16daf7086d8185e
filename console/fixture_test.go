package console_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oncehook/oncehook/console"
	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/receiver"
	"github.com/oncehook/oncehook/route"
)

const testToken = "console-test-token-0123456789"

// Hostile strings, as a customer could type them into a name or a
// description, and as a broken sink could answer.
const (
	hostileScript = `<script>alert("xss-script")</script>`
	hostileImg    = `"><img src=x onerror=alert("xss-img")>`
	hostileSink   = `<img src=x onerror=alert("xss-sink")> 502 from upstream`
)

// switchSink fails every delivery while failing is set, with an answer
// that holds markup, and records the events it delivered.
type switchSink struct {
	failing   atomic.Bool
	delivered *harness.RecordingSink
}

func (s *switchSink) Deliver(ctx context.Context, ev *event.Event) error {
	if s.failing.Load() {
		return errors.New(hostileSink)
	}
	return s.delivered.Deliver(ctx, ev)
}

func (s *switchSink) Close() error { return nil }

// fixture is a receiver with two destinations, billing (invoice.*, which
// fails at first, one attempt) and crm (every event), and the console
// served over HTTP beside it.
type fixture struct {
	in      *harness.Instance
	billing *switchSink
	crm     *harness.RecordingSink
	console *httptest.Server
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	pool := testenv.Postgres(t)
	f := &fixture{billing: &switchSink{delivered: harness.NewRecordingSink()}, crm: harness.NewRecordingSink()}
	f.billing.failing.Store(true)
	m := metrics.New()
	f.in = harness.StartInstance(t, harness.InstanceConfig{
		Pool: pool,
		Delivery: delivery.DispatcherConfig{
			RetryBase: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond, SweepInterval: 20 * time.Millisecond,
			Destinations: []delivery.Destination{
				{Name: "billing", Sink: f.billing, Filter: route.Filter{Types: []string{"invoice.*"}}, MaxAttempts: 1},
				{Name: "crm", Sink: f.crm},
			},
		},
		Tune: func(c *receiver.Config) { c.Metrics = m },
	})
	health := func(ctx context.Context) console.Health {
		if err := pool.Ping(ctx); err != nil {
			return console.Health{Postgres: "down", PostgresError: err.Error(), Redis: "disabled"}
		}
		return console.Health{Postgres: "ok", Redis: "disabled"}
	}
	c, err := console.New(console.Config{Token: testToken, Pool: pool, Metrics: m.Registry, Health: health,
		Destinations: []string{"billing", "crm"}})
	if err != nil {
		t.Fatal(err)
	}
	f.console = httptest.NewServer(c)
	t.Cleanup(f.console.Close)
	return f
}

// hostileBody is an event whose customer-typed fields hold markup.
func hostileBody(id, typ string) []byte {
	body := string(harness.EventBody(id, typ))
	body = strings.Replace(body, `"Zoë Ångström 佐藤"`, fmt.Sprintf("%q", hostileScript), 1)
	return []byte(strings.Replace(body, `"ünïcode ✓"`, fmt.Sprintf("%q", hostileImg), 1))
}

// post sends an event and fails the test unless it is accepted.
func (f *fixture) post(t *testing.T, body []byte) {
	t.Helper()
	if r := harness.Post(t, f.in.URL, body); r.Code != 200 || !strings.Contains(r.Body, "accepted") {
		t.Fatalf("posting: %d %s", r.Code, r.Body)
	}
}

// waitStatus waits until the event's delivery to destination has status.
func (f *fixture) waitStatus(t *testing.T, id, destination, status string) {
	t.Helper()
	var got string
	var err error
	eventually.Require(t, 15*time.Second, fmt.Sprintf("%s at %s to be %s", id, destination, status), func() bool {
		err = f.in.Pool().QueryRow(context.Background(), `SELECT status FROM stripe_webhook_deliveries
			WHERE event_id = $1 AND destination = $2`, id, destination).Scan(&got)
		return err == nil && got == status
	}, func() string { return fmt.Sprintf("status %q (%v)", got, err) })
}
