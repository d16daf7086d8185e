package sink_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/sink"
)

// capture is a Sink that keeps copies of what it is given.
type capture struct {
	mu     sync.Mutex
	got    []event.Event
	err    error
	closed int
}

func (c *capture) Deliver(_ context.Context, ev *event.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp := *ev
	cp.Payload = bytes.Clone(ev.Payload)
	c.got = append(c.got, cp)
	return c.err
}

func (c *capture) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed++
	return errors.New("next closed")
}

// fetcher is a Fetch that answers from a map and records its calls: the
// ids, and the accounts given with them.
type fetcher struct {
	mu       sync.Mutex
	full     map[string][]byte
	err      error
	calls    []string
	accounts []string
}

func (f *fetcher) fetch(_ context.Context, id, account string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, id)
	f.accounts = append(f.accounts, account)
	if f.err != nil {
		return nil, f.err
	}
	return f.full[id], nil
}

const (
	thinBody = `{"id":"evt_thin_s1","object":"v2.core.event","type":"v1.billing.meter.error_report_triggered","created":"2026-11-29T12:00:00.000Z","related_object":{"id":"mtr_1","type":"billing.meter","url":"/v1/billing/meters/mtr_1"},"livemode":false}`
	fullBody = `{"id":"evt_thin_s1","object":"v2.core.event","type":"v1.billing.meter.error_report_triggered","created":"2026-11-29T12:00:00.000Z","data":{"developer_message_summary":"3 errors"},"related_object":{"id":"mtr_1","type":"billing.meter","url":"/v1/billing/meters/mtr_1"},"livemode":false}`
)

func thinEvent(thinFlag bool) *event.Event {
	return &event.Event{ID: "evt_thin_s1", Type: "v1.billing.meter.error_report_triggered", Thin: thinFlag,
		Created: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC), Account: "acct_1", Payload: []byte(thinBody)}
}

// TestThinFetchReplacesThinEvents: a thin event, whether marked Thin at
// intake or recognised by its body's object as when read back from
// Postgres, reaches Next with the fetched full body in place of its own,
// its other fields kept; the caller's event is not changed. Fetch is
// given the event's account (Stripe needs it as Stripe-Context for a
// connected account's event), "" for the platform's.
func TestThinFetchReplacesThinEvents(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ev   *event.Event
	}{
		{"flagged at intake", thinEvent(true)},
		{"read back from Postgres", thinEvent(false)},
		{"object after nested objects", &event.Event{ID: "evt_thin_s1", Type: "v1.billing.meter.error_report_triggered",
			Payload: []byte(`{"related_object":{"object":"billing.meter"},"id":"evt_thin_s1","type":"v1.billing.meter.error_report_triggered",` + "\n  " + `"object" : "v2.core.event"}`)}},
		{"platform event", func() *event.Event { ev := thinEvent(true); ev.Account = ""; return ev }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := &capture{}
			f := &fetcher{full: map[string][]byte{"evt_thin_s1": []byte(fullBody)}}
			ts := &sink.ThinFetch{Next: next, Fetch: f.fetch}
			if !sink.IsThin(tc.ev) {
				t.Fatal("IsThin: false")
			}
			orig := *tc.ev
			origPayload := bytes.Clone(tc.ev.Payload)
			if err := ts.Deliver(context.Background(), tc.ev); err != nil {
				t.Fatal(err)
			}
			if len(f.calls) != 1 || f.calls[0] != "evt_thin_s1" {
				t.Fatalf("Fetch calls %v, want one for evt_thin_s1", f.calls)
			}
			if f.accounts[0] != tc.ev.Account {
				t.Errorf("Fetch got account %q, want the event's %q", f.accounts[0], tc.ev.Account)
			}
			if len(next.got) != 1 {
				t.Fatalf("Next got %d events, want 1", len(next.got))
			}
			got := next.got[0]
			if string(got.Payload) != fullBody {
				t.Errorf("Next got payload\n%s\nwant the fetched body\n%s", got.Payload, fullBody)
			}
			want := orig
			want.Payload = got.Payload
			if got.ID != want.ID || got.Type != want.Type || !got.Created.Equal(want.Created) || got.Account != want.Account ||
				got.Livemode != want.Livemode || got.Source != want.Source {
				t.Errorf("Next got %+v, want the fields of %+v", got, want)
			}
			if !bytes.Equal(tc.ev.Payload, origPayload) {
				t.Errorf("the caller's event was changed: %s", tc.ev.Payload)
			}
		})
	}
}

// TestThinFetchPassesSnapshotEvents: snapshot events, including ones that
// mention v2.core.event below the top level, go to Next as they are and
// Fetch is not called.
func TestThinFetchPassesSnapshotEvents(t *testing.T) {
	t.Parallel()
	for _, payload := range []string{
		`{"id":"evt_snap_1","object":"event","api_version":"2025-08-27.basil","created":1700000000,"data":{"object":{"id":"in_1","object":"invoice"}},"type":"invoice.paid"}`,
		`{"id":"evt_snap_1","object":"event","data":{"object":{"id":"x","object":"v2.core.event"}},"type":"invoice.paid"}`,
		`{"id":"evt_snap_1","type":"invoice.paid","note":"\"object\":\"v2.core.event\""}`,
		`{"id":"evt_snap_1","type":"invoice.paid"}`,
	} {
		next := &capture{}
		f := &fetcher{err: errors.New("Fetch must not be called")}
		ts := &sink.ThinFetch{Next: next, Fetch: f.fetch}
		ev := &event.Event{ID: "evt_snap_1", Type: "invoice.paid", APIVersion: "2025-08-27.basil", Payload: []byte(payload)}
		if sink.IsThin(ev) {
			t.Errorf("IsThin(%s): true", payload)
		}
		if err := ts.Deliver(context.Background(), ev); err != nil {
			t.Fatalf("%s: %v", payload, err)
		}
		if len(f.calls) != 0 {
			t.Errorf("%s: Fetch called for %v", payload, f.calls)
		}
		if len(next.got) != 1 || string(next.got[0].Payload) != payload || next.got[0].ID != "evt_snap_1" || next.got[0].APIVersion != ev.APIVersion {
			t.Errorf("%s: Next got %+v, want the event untouched", payload, next.got)
		}
	}

	// Next's error is returned as it is.
	next := &capture{err: errors.New("downstream 500")}
	ts := &sink.ThinFetch{Next: next, Fetch: (&fetcher{}).fetch}
	if err := ts.Deliver(context.Background(), &event.Event{ID: "evt_snap_2", Payload: []byte(`{"id":"evt_snap_2","object":"event"}`)}); err != next.err {
		t.Errorf("Next's error came back as %v", err)
	}
}

// TestThinFetchFailure: when the fetch fails, Deliver fails with an error
// that wraps the fetch's and names the event, and Next is not called: the
// attempt counts as failed and the thin body is never delivered instead.
func TestThinFetchFailure(t *testing.T) {
	t.Parallel()
	cause := errors.New("Stripe API answered 500")
	next := &capture{}
	f := &fetcher{err: cause}
	ts := &sink.ThinFetch{Next: next, Fetch: f.fetch}
	err := ts.Deliver(context.Background(), thinEvent(false))
	if !errors.Is(err, cause) {
		t.Fatalf("Deliver: %v, want it to wrap %v", err, cause)
	}
	if !strings.Contains(err.Error(), "evt_thin_s1") {
		t.Errorf("error %q does not name the event", err)
	}
	if len(next.got) != 0 {
		t.Errorf("Next got %d events after a failed fetch", len(next.got))
	}

	// Next failing after a good fetch is a failure too.
	next = &capture{err: errors.New("downstream 500")}
	f = &fetcher{full: map[string][]byte{"evt_thin_s1": []byte(fullBody)}}
	ts = &sink.ThinFetch{Next: next, Fetch: f.fetch}
	if err := ts.Deliver(context.Background(), thinEvent(true)); !errors.Is(err, next.err) {
		t.Errorf("Next's failure: %v", err)
	}
}

// TestThinFetchPassesContext: Fetch is called with Deliver's context, so
// the delivery timeout bounds it.
func TestThinFetchPassesContext(t *testing.T) {
	t.Parallel()
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "deliver")
	var seen any
	ts := &sink.ThinFetch{Next: &capture{}, Fetch: func(ctx context.Context, _, _ string) ([]byte, error) {
		seen = ctx.Value(key{})
		return nil, ctx.Err()
	}}
	_ = ts.Deliver(ctx, thinEvent(true))
	if seen != "deliver" {
		t.Errorf("Fetch got another context (value %v)", seen)
	}
}

// TestThinFetchCloseClosesNext: Close closes Next and returns its error.
func TestThinFetchCloseClosesNext(t *testing.T) {
	t.Parallel()
	next := &capture{}
	ts := &sink.ThinFetch{Next: next, Fetch: (&fetcher{}).fetch}
	if err := ts.Close(); err == nil || err.Error() != "next closed" {
		t.Errorf("Close: %v, want Next's error", err)
	}
	if next.closed != 1 {
		t.Errorf("Next closed %d times, want 1", next.closed)
	}
}

// TestIsThinAgreesWithTheReceiver: an event read back from Postgres has
// lost its Thin flag, so IsThin must tell from the body alone what the
// receiver's event.Parse decided at intake. Otherwise a retry or a replay
// would deliver a thin event as it is, or fetch a snapshot event that has
// no v2 counterpart until it goes dead.
func TestIsThinAgreesWithTheReceiver(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		thinBody,
		fullBody,
		`{"id":"evt_1","object":"event","type":"invoice.paid","data":{"object":{"object":"v2.core.event"}}}`,
		`{"id":"evt_1","type":"invoice.paid"}`,
		`{"id":"evt_1","object":null,"type":"invoice.paid"}`,
		`{"id":"evt_1","type":"a.b","\u006fbject":"v2.core.event"}`,
		`{"id":"evt_1","type":"a.b","object":"v2\u002ecore.event"}`,
		`{"data":{"x":[1,{"object":"event"}]},"id":"evt_1","type":"a.b","object" :` + "\n" + `"v2.core.event"}`,
		// encoding/json matches keys case-insensitively; the receiver does not.
		`{"id":"evt_1","object":"event","Object":"v2.core.event","type":"invoice.paid"}`,
		`{"id":"evt_1","OBJECT":"v2.core.event","type":"invoice.paid"}`,
		`{"id":"evt_1","object":"v2.core.event","Object":"event","type":"a.b"}`,
	} {
		parsed, err := event.Parse([]byte(body))
		if err != nil {
			t.Fatalf("event.Parse(%s): %v", body, err)
		}
		fromDB := &event.Event{ID: parsed.ID, Type: parsed.Type, Payload: []byte(body)}
		if got := sink.IsThin(fromDB); got != parsed.Thin {
			t.Errorf("IsThin(%s) = %t, but the receiver took it for thin=%t", body, got, parsed.Thin)
		}
	}
}
