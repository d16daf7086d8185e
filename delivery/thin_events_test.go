package delivery_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82"

	"github.com/oncehook/oncehook/admin"
	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/stripefake"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/sink"
	"github.com/oncehook/oncehook/store"
	"github.com/oncehook/oncehook/stripeapi"
)

const thinKey = "sk_test_thin_events_0001"

// thinAPIVersion is STRIPE_API_VERSION in these tests: an old v1 version,
// as a webhook endpoint's may be. /v2 fetches must not send it.
const thinAPIVersion = "2024-06-20"

// thinAccount is the connected account of thin events that carry one.
const thinAccount = "acct_1ThinConnected0001"

// payloadSink records every payload delivered per event id, and whether
// the event still carried the Thin flag (false when read back from
// Postgres).
type payloadSink struct {
	mu       sync.Mutex
	payloads map[string][][]byte
	thin     map[string][]bool
}

func newPayloadSink() *payloadSink {
	return &payloadSink{payloads: map[string][][]byte{}, thin: map[string][]bool{}}
}

func (s *payloadSink) Deliver(_ context.Context, ev *event.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.payloads[ev.ID] = append(s.payloads[ev.ID], bytes.Clone(ev.Payload))
	s.thin[ev.ID] = append(s.thin[ev.ID], ev.Thin)
	return nil
}

func (s *payloadSink) Close() error { return nil }

func (s *payloadSink) get(id string) ([][]byte, []bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.payloads[id]...), append([]bool(nil), s.thin[id]...)
}

// waitDelivered waits until every id has reached s at least once.
func (s *payloadSink) waitDelivered(t *testing.T, timeout time.Duration, ids ...string) {
	t.Helper()
	missing := ""
	eventually.Require(t, timeout, "every event delivered", func() bool {
		missing = ""
		for _, id := range ids {
			if got, _ := s.get(id); len(got) == 0 {
				missing = id
				break
			}
		}
		return missing == ""
	}, func() string { return missing + " is not" })
}

// thinBody is a thin event as Stripe posts it to an event destination;
// account, when not empty, is the connected account it happened on (its
// context).
func thinBody(id, account string) []byte {
	ctxField := ""
	if account != "" {
		ctxField = `"context":"` + account + `",`
	}
	return []byte(`{"id":"` + id + `","object":"v2.core.event","type":"v1.billing.meter.error_report_triggered","created":"2026-11-29T12:00:00.000Z",` + ctxField +
		`"related_object":{"id":"mtr_test_61R9IeRVrpGJdsRDu41LYGNX","type":"billing.meter","url":"/v1/billing/meters/mtr_test_61R9IeRVrpGJdsRDu41LYGNX"},"livemode":false}`)
}

// fullBody is the event behind thinBody, as GET /v2/core/events/{id}
// answers it (pretty-printed, so that a re-encoding would show).
func fullBody(id, account string) []byte {
	ctxField := "null"
	if account != "" {
		ctxField = `"` + account + `"`
	}
	return []byte(`{
  "id": "` + id + `",
  "object": "v2.core.event",
  "type": "v1.billing.meter.error_report_triggered",
  "created": "2026-11-29T12:00:00.000Z",
  "data": {
    "developer_message_summary": "There is 1 invalid event",
    "reason": {"error_count": 1, "error_types": [{"code": "meter_event_no_customer_defined", "error_count": 1}]},
    "validation_start": "2026-11-29T11:00:00.000Z",
    "validation_end": "2026-11-29T12:00:00.000Z"
  },
  "related_object": {"id": "mtr_test_61R9IeRVrpGJdsRDu41LYGNX", "type": "billing.meter", "url": "/v1/billing/meters/mtr_test_61R9IeRVrpGJdsRDu41LYGNX"},
  "livemode": false,
  "context": ` + ctxField + `,
  "reason": null
}`)
}

// thinSetup starts stripefake, a client on it with STRIPE_API_VERSION
// thinAPIVersion, and an instance whose one destination "app" is out
// wrapped in ThinFetch, as THIN_EVENTS=fetch wires it.
func thinSetup(t *testing.T, maxAttempts int) (*stripefake.Server, *payloadSink, *harness.Instance, *sweepWatch) {
	t.Helper()
	fake := stripefake.New(t, thinKey)
	client, err := stripeapi.New(stripeapi.Config{Key: thinKey, Base: fake.URL(), Version: thinAPIVersion, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	out := newPayloadSink()
	cfg := fastRetries
	cfg.Destinations = []delivery.Destination{
		{Name: "app", Sink: &sink.ThinFetch{Next: out, Fetch: client.FetchV2Event}, MaxAttempts: maxAttempts},
	}
	pool, sweeps := watchSweeps(t, testenv.Postgres(t))
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Delivery: cfg})
	return fake, out, in, sweeps
}

// fetchesOf counts the server's GET /v2/core/events/{id} requests.
func fetchesOf(fake *stripefake.Server, id string) int {
	n := 0
	for _, r := range fake.Requests() {
		if r.Path == "/v2/core/events/"+id {
			n++
		}
	}
	return n
}

// checkFetchHeaders checks every fetch of id sent stripe-go's own
// Stripe-Version, not STRIPE_API_VERSION, and account as Stripe-Context
// (none when account is "").
func checkFetchHeaders(t *testing.T, fake *stripefake.Server, id, account string) {
	t.Helper()
	for _, r := range fake.Requests() {
		if r.Path != "/v2/core/events/"+id {
			continue
		}
		if got := r.Header.Values("Stripe-Version"); len(got) != 1 || got[0] != stripe.APIVersion {
			t.Errorf("%s sent Stripe-Version %q, want stripe-go's %q (not STRIPE_API_VERSION %q)", r.Path, got, stripe.APIVersion, thinAPIVersion)
		}
		if got := r.Header.Values("Stripe-Context"); (account == "" && len(got) != 0) || (account != "" && (len(got) != 1 || got[0] != account)) {
			t.Errorf("%s sent Stripe-Context %q, want %q", r.Path, got, account)
		}
	}
}

func ledgerPayload(t *testing.T, in *harness.Instance, id string) []byte {
	t.Helper()
	var p []byte
	if err := in.Pool().QueryRow(context.Background(), `SELECT payload FROM stripe_webhook_events WHERE event_id = $1`, id).Scan(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestThinEventIsDeliveredAsTheFullEvent: a signed thin event posted to
// the receiver reaches the destination as the full event fetched from
// (fake) Stripe, byte for byte, while the ledger keeps the thin body; a
// connected account's thin event is fetched with its account as
// Stripe-Context; the fetches send stripe-go's Stripe-Version, not the
// configured v1 one; a snapshot event through the same destination is
// delivered as posted and fetches nothing.
func TestThinEventIsDeliveredAsTheFullEvent(t *testing.T) {
	t.Parallel()
	fake, out, in, _ := thinSetup(t, 5)
	const id, connectedID, snapID = "evt_thin_1", "evt_thin_connected_1", "evt_thin_snapshot_1"
	thin, full := thinBody(id, ""), fullBody(id, "")
	connectedThin, connectedFull := thinBody(connectedID, thinAccount), fullBody(connectedID, thinAccount)
	fake.AddThin(id, "v1.billing.meter.error_report_triggered", full)
	fake.AddThin(connectedID, "v1.billing.meter.error_report_triggered", connectedFull)
	snap := harness.EventBody(snapID, "invoice.paid")

	for _, body := range [][]byte{thin, connectedThin, snap} {
		if r := harness.Post(t, in.URL, body); r.Code != 200 || !strings.Contains(r.Body, "accepted") {
			t.Fatalf("posting %s: %d %s", body, r.Code, r.Body)
		}
	}
	out.waitDelivered(t, 10*time.Second, id, connectedID, snapID)
	for _, evID := range []string{id, connectedID, snapID} {
		waitStates(t, in, evID, "app=delivered")
	}

	for _, want := range []struct {
		id         string
		thin, full []byte
		account    string
	}{{id, thin, full, ""}, {connectedID, connectedThin, connectedFull, thinAccount}} {
		got, _ := out.get(want.id)
		if len(got) != 1 || !bytes.Equal(got[0], want.full) {
			t.Fatalf("the sink got %d payloads for %s:\n%s\nwant once the full event:\n%s", len(got), want.id, bytes.Join(got, []byte("\n")), want.full)
		}
		if p := ledgerPayload(t, in, want.id); !bytes.Equal(p, want.thin) {
			t.Errorf("the ledger holds\n%s\nwant the thin body as received\n%s", p, want.thin)
		}
		if n := fetchesOf(fake, want.id); n != 1 {
			t.Errorf("%d fetches of %s, want 1", n, want.id)
		}
		checkFetchHeaders(t, fake, want.id, want.account)
	}
	if got, _ := out.get(snapID); len(got) != 1 || !bytes.Equal(got[0], snap) {
		t.Errorf("the snapshot event reached the sink as %d payloads: %q", len(got), got)
	}
	if n := fetchesOf(fake, snapID); n != 0 {
		t.Errorf("the snapshot event was fetched %d times", n)
	}
	if n := len(fake.Requests()); n != 2 {
		t.Errorf("%d requests to Stripe, want the 2 fetches", n)
	}
}

// TestThinFetchFailureGoesDeadThenReplays: while Stripe fails the fetch,
// each attempt fails; after MaxAttempts the delivery is dead with the
// fetch failure as its last error and nothing reached the sink. Once the
// fetch works, a replay delivers the full event exactly once. The retries
// and the replay read the event back from Postgres, without the Thin flag,
// and still fetch with the event's connected account as Stripe-Context.
func TestThinFetchFailureGoesDeadThenReplays(t *testing.T) {
	t.Parallel()
	fake, out, in, sweeps := thinSetup(t, 3)
	const id = "evt_thin_2"
	full := fullBody(id, thinAccount)
	fake.AddThin(id, "v1.billing.meter.error_report_triggered", full)
	fake.FailThin(id, 1000, 500)

	if r := harness.Post(t, in.URL, thinBody(id, thinAccount)); r.Code != 200 || !strings.Contains(r.Body, "accepted") {
		t.Fatalf("posting: %d %s", r.Code, r.Body)
	}
	ctx := context.Background()
	var dead admin.EventRow
	eventually.Require(t, 10*time.Second, id+" dead", func() bool {
		rows, err := listDeliveries(ctx, in.Pool(), admin.ListParams{Status: store.StatusDead})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 1 {
			dead = rows[0]
		}
		return len(rows) == 1
	}, func() string { return fmt.Sprint(statesOf(t, in, id)) })
	if dead.ID != id || dead.Destination != "app" || dead.Attempts != 3 {
		t.Errorf("dead delivery %+v, want %s to app after 3 attempts", dead, id)
	}
	t.Logf("dead after %d attempts: %s", dead.Attempts, dead.LastError)
	for _, want := range []string{id, "fetching the full event", "500"} {
		if !strings.Contains(dead.LastError, want) {
			t.Errorf("last_error %q does not mention %q", dead.LastError, want)
		}
	}
	if n := fetchesOf(fake, id); n != 3 {
		t.Errorf("%d fetches while failing, want one per attempt: 3", n)
	}
	if got, _ := out.get(id); len(got) != 0 {
		t.Fatalf("the sink got %d payloads while the fetch failed: %q", len(got), got)
	}

	fake.FailThin(id, 0, 0)
	found, err := store.New(in.Pool()).ReplayIDs(ctx, []string{id}, store.ReplayIDsOptions{})
	if err != nil || len(found) != 1 || found[0] != id {
		t.Fatalf("Replay: %v, %v", found, err)
	}
	out.waitDelivered(t, 10*time.Second, id)
	waitStates(t, in, id, "app=delivered")
	sweeps.settle(t, []string{"app"}, in) // nothing more may come
	got, thinFlags := out.get(id)
	if len(got) != 1 || !bytes.Equal(got[0], full) {
		t.Fatalf("after the replay the sink got %d payloads:\n%s\nwant once the full event:\n%s", len(got), bytes.Join(got, []byte("\n")), full)
	}
	t.Logf("replayed delivery carried Thin=%t (false: recognised from the stored body)", thinFlags[0])
	if p := ledgerPayload(t, in, id); !bytes.Equal(p, thinBody(id, thinAccount)) {
		t.Errorf("the ledger holds\n%s\nwant the thin body", p)
	}
	if n := fetchesOf(fake, id); n != 4 {
		t.Errorf("%d fetches in all, want 4", n)
	}
	checkFetchHeaders(t, fake, id, thinAccount)
}

// waitStates waits until id's deliveries are exactly want.
func waitStates(t *testing.T, in *harness.Instance, id string, want ...string) {
	t.Helper()
	var got []string
	eventually.Require(t, 10*time.Second, fmt.Sprintf("%s's deliveries to be %v", id, want), func() bool {
		got = statesOf(t, in, id)
		return strings.Join(got, ",") == strings.Join(want, ",")
	}, func() string { return fmt.Sprintf("deliveries %v", got) })
}
