package stripemock_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82"

	"github.com/oncehook/oncehook/internal/stripemock"
)

// recorder is an http.RoundTripper that keeps the requests it forwards.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req.Clone(req.Context()))
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func TestStripeGoListEvents(t *testing.T) {
	t.Parallel()
	base := stripemock.Start(t)
	rec := &recorder{}
	sc := stripe.NewClient("sk_test_123", stripe.WithBackends(stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL:               stripe.String(base),
		HTTPClient:        &http.Client{Transport: rec, Timeout: 10 * time.Second},
		MaxNetworkRetries: stripe.Int64(0),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelError},
	})))
	params := &stripe.EventListParams{
		ListParams:      stripe.ListParams{Limit: stripe.Int64(100)},
		DeliverySuccess: stripe.Bool(false),
		Types:           stripe.StringSlice([]string{"invoice.paid", "invoice.payment_failed"}),
		CreatedRange:    &stripe.RangeQueryParams{GreaterThanOrEqual: time.Now().Add(-72 * time.Hour).Unix()},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := 0
	for ev, err := range sc.V1Events.List(ctx, params) {
		if err != nil {
			t.Fatalf("listing events from stripe-mock: %v", err)
		}
		if ev.ID == "" {
			t.Errorf("event without id: %+v", ev)
		}
		n++
	}
	if n == 0 {
		t.Error("stripe-mock listed no events")
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.reqs) != 1 {
		t.Fatalf("stripe-go sent %d requests, want 1", len(rec.reqs))
	}
	req := rec.reqs[0]
	q := req.URL.Query()
	t.Logf("%s %s\nStripe-Version: %s", req.Method, req.URL.RequestURI(), req.Header.Get("Stripe-Version"))
	for k, want := range map[string]string{
		"delivery_success": "false",
		"limit":            "100",
		"types[0]":         "invoice.paid",
		"types[1]":         "invoice.payment_failed",
	} {
		if got := q.Get(k); got != want {
			t.Errorf("query %s = %q, want %q (query %s)", k, got, want, req.URL.RawQuery)
		}
	}
	if q.Get("created[gte]") == "" {
		t.Errorf("query has no created[gte]: %s", req.URL.RawQuery)
	}
	if got := req.Header.Get("Stripe-Version"); got != stripe.APIVersion {
		t.Errorf("Stripe-Version = %q, want %q", got, stripe.APIVersion)
	}
}

// get sends GET base+path with a test key and the given extra header
// pairs, and returns the status and body.
func get(t *testing.T, base, path string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer sk_test_123")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// TestValidatesParams shows that stripe-mock rejects requests that the
// OpenAPI spec does not allow, so a wire-format test against it can fail.
func TestValidatesParams(t *testing.T) {
	t.Parallel()
	base := stripemock.Start(t)
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"?delivery_success=false&types[]=invoice.paid&created[gte]=1700000000&limit=100", http.StatusOK},
		{"?types[0]=invoice.paid&types[1]=invoice.payment_failed", http.StatusOK},
		{"?no_such_param=1", http.StatusBadRequest},
		{"?delivery_success=notabool", http.StatusBadRequest},
		{"?limit=abc", http.StatusBadRequest},
		{"?types=invoice.paid", http.StatusBadRequest}, // a string, not an array
		{"?created[gte]=yesterday", http.StatusBadRequest},
	} {
		code, body := get(t, base, "/v1/events"+tc.query)
		if code != tc.want {
			t.Errorf("GET /v1/events%s: %d, want %d\n%s", tc.query, code, tc.want, body)
		}
		if tc.want == http.StatusBadRequest && !strings.Contains(body, "invalid_request_error") {
			t.Errorf("GET /v1/events%s: body lacks invalid_request_error:\n%s", tc.query, body)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/events without a key: %d, want 401", resp.StatusCode)
	}
}

// TestStripeVersion shows what stripe-mock does with Stripe-Version: by
// default nothing; with -strict-version-check it rejects any version but
// that of its spec. It never echoes the header back.
func TestStripeVersion(t *testing.T) {
	t.Parallel()
	const bogus = "1999-01-01.bogus"
	lax := stripemock.Start(t)
	if code, body := get(t, lax, "/v1/events", "Stripe-Version", bogus); code != http.StatusOK {
		t.Errorf("default stripe-mock, unknown Stripe-Version: %d, want 200\n%s", code, body)
	}

	strict := stripemock.Start(t, "-strict-version-check")
	code, body := get(t, strict, "/v1/events", "Stripe-Version", bogus)
	if code != http.StatusBadRequest {
		t.Fatalf("strict stripe-mock, unknown Stripe-Version: %d, want 400\n%s", code, body)
	}
	m := regexp.MustCompile(`OpenAPI specification '([^']+)'`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("strict stripe-mock: no spec version in the error:\n%s", body)
	}
	t.Logf("stripe-mock spec version %s; stripe-go v82 sends %s", m[1], stripe.APIVersion)
	if code, body := get(t, strict, "/v1/events", "Stripe-Version", m[1]); code != http.StatusOK {
		t.Errorf("strict stripe-mock, Stripe-Version %s: %d, want 200\n%s", m[1], code, body)
	}
	if code, body := get(t, strict, "/v1/events"); code != http.StatusOK {
		t.Errorf("strict stripe-mock, no Stripe-Version: %d, want 200\n%s", code, body)
	}
}
