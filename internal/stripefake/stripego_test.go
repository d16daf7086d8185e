package stripefake_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82"

	"github.com/oncehook/oncehook/internal/stripefake"
)

// stripeClient points stripe-go v82 at s, with retries and retry sleeps as
// given and logging off.
func stripeClient(t *testing.T, s *stripefake.Server, apiKey string, retries int64) *stripe.Client {
	t.Helper()
	backends := stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL:               stripe.String(s.URL()),
		MaxNetworkRetries: stripe.Int64(retries),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
		HTTPClient:        &http.Client{Timeout: 10 * time.Second},
	})
	// Retries would otherwise sleep 0.5 s or more each.
	backends.API.(*stripe.BackendImplementation).SetNetworkRetriesSleep(false)
	return stripe.NewClient(apiKey, stripe.WithBackends(backends))
}

// TestStripeGoListsThroughTheFake drives the fake with stripe-go itself:
// its form encoding of types, created[gte] and delivery_success, its paging
// with starting_after, and its Stripe-Version header.
func TestStripeGoListsThroughTheFake(t *testing.T) {
	s := stripefake.New(t, key)
	evs := fill(s, 600)
	since := base.Add(20 * time.Second)
	types := []string{"invoice.paid", "charge.succeeded"}
	want := idsOf(evs, func(e stripefake.Event) bool {
		return !e.DeliverySuccess && slices.Contains(types, e.Type) && !e.Created.Before(since)
	})
	if len(want) < 40 {
		t.Fatalf("only %d matching events; the test wants several pages", len(want))
	}

	sc := stripeClient(t, s, key, 0)
	params := &stripe.EventListParams{
		DeliverySuccess: stripe.Bool(false),
		Types:           stripe.StringSlice(types),
		CreatedRange:    &stripe.RangeQueryParams{GreaterThanOrEqual: since.Unix()},
	}
	params.Limit = stripe.Int64(7)
	var got []string
	for ev, err := range sc.V1Events.List(context.Background(), params) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.APIVersion != stripe.APIVersion || ev.Object != "event" || ev.Data == nil || ev.Data.Object["object"] == nil {
			t.Fatalf("event as decoded by stripe-go: %+v", ev)
		}
		got = append(got, ev.ID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("stripe-go listed\n %v\nwant\n %v", got, want)
	}

	reqs := s.Requests()
	if wantPages := (len(want) + 6) / 7; len(reqs) != wantPages && len(reqs) != wantPages+1 {
		t.Errorf("%d requests for %d events at 7 a page", len(reqs), len(want))
	}
	first := reqs[0]
	// ListParams (limit) first, then EventListParams' fields in order;
	// zero RangeQueryParams fields are left out.
	wantQuery := fmt.Sprintf("limit=7&created[gte]=%d&delivery_success=false&types[0]=invoice.paid&types[1]=charge.succeeded", since.Unix())
	if first.RawQuery != wantQuery {
		t.Errorf("stripe-go sent %q, want %q", first.RawQuery, wantQuery)
	}
	if !strings.HasPrefix(reqs[1].RawQuery, wantQuery+"&starting_after=evt_") {
		t.Errorf("second page query %q", reqs[1].RawQuery)
	}
	if v := first.Header.Get("Stripe-Version"); v != stripe.APIVersion {
		t.Errorf("Stripe-Version %q, want stripe-go's %s", v, stripe.APIVersion)
	}
	if fakeDefault := stripefake.DefaultAPIVersion; fakeDefault != stripe.APIVersion {
		t.Errorf("stripefake.DefaultAPIVersion %s is not stripe-go's pinned %s", fakeDefault, stripe.APIVersion)
	}
	if a := first.Header.Get("Authorization"); a != "Bearer ****"+key[len(key)-4:] {
		t.Errorf("recorded Authorization %q", a)
	}
}

// TestStripeGoEndingBefore checks the fake's ending_before order is the one
// stripe-go's backward iteration expects: it reverses each page and walks
// from the cursor towards the newest event.
func TestStripeGoEndingBefore(t *testing.T) {
	s := stripefake.New(t, key)
	all := idsOf(fill(s, 50), nil)
	sc := stripeClient(t, s, key, 0)
	params := &stripe.EventListParams{}
	params.EndingBefore = stripe.String(all[33])
	params.Limit = stripe.Int64(4)
	var got []string
	for ev, err := range sc.V1Events.List(context.Background(), params) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev.ID)
	}
	want := slices.Clone(all[:33])
	slices.Reverse(want) // closest to the cursor first
	if !slices.Equal(got, want) {
		t.Fatalf("stripe-go backward iteration\n %v\nwant\n %v", got, want)
	}
}

func TestStripeGoErrorsAndRetries(t *testing.T) {
	s := stripefake.New(t, key)
	fill(s, 3)
	ctx := context.Background()

	// stripe-go v82 never retries a response carrying a Stripe error body
	// (its *Error.canRetry is false but for 429 lock_timeout, and is checked
	// before Stripe-Should-Retry), so MaxNetworkRetries does not cover these.
	s.FailNext(1, 500, "true")
	var serr *stripe.Error
	for _, err := range stripeClient(t, s, key, 2).V1Events.List(ctx, nil) {
		if !errors.As(err, &serr) || serr.HTTPStatusCode != 500 || serr.Type != stripe.ErrorTypeAPI {
			t.Fatalf("got %v, want a 500 api_error", err)
		}
		break
	}
	if len(s.Requests()) != 1 {
		t.Fatalf("%d requests: stripe-go retried an API error", len(s.Requests()))
	}
	n := 0
	for _, err := range stripeClient(t, s, key, 2).V1Events.List(ctx, nil) {
		if err != nil {
			t.Fatalf("after the failure: %v", err)
		}
		n++
	}
	if n != 3 {
		t.Fatalf("%d events", n)
	}

	// 401 and 403 surface as invalid_request_error with the status.
	for _, tc := range []struct {
		key    string
		status int
	}{{"sk_test_someoneelse0000", 401}, {"rk_test_restricted0000", 403}} {
		s.SetForbidden("rk_test_restricted0000")
		for _, err := range stripeClient(t, s, tc.key, 2).V1Events.List(ctx, nil) {
			if !errors.As(err, &serr) || serr.HTTPStatusCode != tc.status || serr.Type != stripe.ErrorTypeInvalidRequest {
				t.Fatalf("key %s: got %v, want %d", tc.key, err, tc.status)
			}
			break
		}
	}

	// A v2 thin-event fetch, and its 404.
	s.AddThin("evt_thin", "v2.core.event_destination.ping", []byte(`{"id":"evt_thin","object":"v2.core.event","type":"v2.core.event_destination.ping","created":"2025-06-15T12:00:00.000Z","livemode":false,"context":null,"data":{},"related_object":{"id":"ed_1","type":"v2.core.event_destination","url":"/v2/core/event_destinations/ed_1"}}`))
	sc := stripeClient(t, s, key, 0)
	ev, err := sc.V2CoreEvents.Retrieve(ctx, "evt_thin", nil)
	if err != nil {
		t.Fatal(err)
	}
	ping, ok := ev.(*stripe.V2CoreEventDestinationPingEvent)
	if !ok || ping.ID != "evt_thin" || ping.RelatedObject.ID != "ed_1" {
		t.Fatalf("v2 event %T %+v", ev, ev)
	}
	// v2 errors are not retried either (V2RawError.canRetry is false).
	s.FailThin("evt_thin", 1, 503)
	before := len(s.Requests())
	if _, err := stripeClient(t, s, key, 2).V2CoreEvents.Retrieve(ctx, "evt_thin", nil); err == nil {
		t.Fatal("FailThin: no error")
	}
	if n := len(s.Requests()) - before; n != 1 {
		t.Fatalf("v2 503 sent %d requests", n)
	}
	_, err = sc.V2CoreEvents.Retrieve(ctx, "evt_missing", nil)
	var v2err *stripe.V2RawError
	if !errors.As(err, &v2err) || v2err.Code != "not_found" {
		t.Fatalf("v2 404: %T %v", err, err)
	}
}
