package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stripe/stripe-go/v82"

	"github.com/oncehook/oncehook/admin"
	"github.com/oncehook/oncehook/internal/stripemock"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/store"
)

// testEndpointSecret is what stripeProxy adds to stripe-mock's answer:
// stripe-mock's webhook_endpoint fixture has no secret.
const testEndpointSecret = "whsec_stripemock_0123456789abcdef"

// stripeRequest is one request the proxy forwarded.
type stripeRequest struct {
	method, path, version string
	form                  url.Values
}

// stripeProxy forwards to a stripe-mock of its own, which checks each
// request against Stripe's OpenAPI spec, and records the requests. With
// secret, it adds it to a created webhook endpoint that has none.
type stripeProxy struct {
	url string
	mu  sync.Mutex
	got []stripeRequest
}

func newStripeProxy(t *testing.T, secret string) *stripeProxy {
	t.Helper()
	target, err := url.Parse(stripemock.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	p := &stripeProxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(res *http.Response) error {
		if secret == "" || res.StatusCode != http.StatusOK || res.Request.URL.Path != "/v1/webhook_endpoints" {
			return nil
		}
		var m map[string]any
		body, err := io.ReadAll(res.Body)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return err
		}
		if _, ok := m["secret"]; !ok {
			m["secret"] = secret
		}
		if body, err = json.Marshal(m); err != nil {
			return err
		}
		res.Body = io.NopCloser(bytes.NewReader(body))
		res.ContentLength = int64(len(body))
		res.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		form, _ := url.ParseQuery(string(body))
		p.mu.Lock()
		p.got = append(p.got, stripeRequest{method: r.Method, path: r.URL.Path, version: r.Header.Get("Stripe-Version"), form: form})
		p.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

func (p *stripeProxy) requests() []stripeRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got)
}

// enabledEventsSent reads enabled_events[0], [1]... of a form.
func enabledEventsSent(form url.Values) []string {
	var out []string
	for i := 0; ; i++ {
		v, ok := form["enabled_events["+strconv.Itoa(i)+"]"]
		if !ok {
			return out
		}
		out = append(out, v...)
	}
}

// TestStripeEndpointCreate runs the real binary against stripe-mock: the
// endpoint is created with the union of the destinations' types (a
// wildcard expanded, the live-only destination left out for a test key)
// and the pinned api_version; the secret is printed with the next step.
func TestStripeEndpointCreate(t *testing.T) {
	t.Parallel()
	proxy := newStripeProxy(t, testEndpointSecret)
	env := receiverEnv("STRIPE_API_KEY=sk_test_123", "STRIPE_API_BASE="+proxy.url,
		"DESTINATIONS=billing,crm,ledger",
		"DESTINATION_BILLING_URL=stdout", "DESTINATION_BILLING_TYPES=invoice.*",
		"DESTINATION_CRM_URL=stdout", "DESTINATION_CRM_TYPES=customer.created,invoice.paid",
		"DESTINATION_LEDGER_URL=stdout", "DESTINATION_LEDGER_LIVEMODE=live")
	res := runBinary(t, env, "stripe", "endpoint", "create", "--url", "https://hooks.example.com/webhooks/stripe")
	if res.err != nil {
		t.Fatalf("stripe endpoint create: %v\nstdout:\n%s\nstderr:\n%s", res.err, res.stdout, res.stderr)
	}
	t.Logf("stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	reqs := proxy.requests()
	if len(reqs) != 1 || reqs[0].method != http.MethodPost || reqs[0].path != "/v1/webhook_endpoints" {
		t.Fatalf("requests %+v, want one POST /v1/webhook_endpoints", reqs)
	}
	form := reqs[0].form
	events := enabledEventsSent(form)
	want, _, _, _ := enabledEvents([]route.Destination{{Name: "billing", Filter: route.Filter{Types: []string{"invoice.*"}}}}, route.Test)
	want = slices.Sorted(slices.Values(append(want, "customer.created")))
	if !slices.Equal(events, want) || !slices.Contains(events, "invoice.payment_failed") {
		t.Errorf("enabled_events %q, want %q", events, want)
	}
	for k, v := range map[string]string{"api_version": stripe.APIVersion, "url": "https://hooks.example.com/webhooks/stripe", "description": "oncehook: billing,crm"} {
		if got := form.Get(k); got != v {
			t.Errorf("%s = %q, want %q (form %v)", k, got, v, form)
		}
	}
	if reqs[0].version != stripe.APIVersion {
		t.Errorf("Stripe-Version %q, want %q", reqs[0].version, stripe.APIVersion)
	}
	if strings.Count(res.stdout, testEndpointSecret) != 3 || !strings.Contains(res.stdout, "STRIPE_WEBHOOK_SECRET="+testEndpointSecret+"\n") ||
		!strings.Contains(res.stdout, "STRIPE_WEBHOOK_SECRET=whsec_...,"+testEndpointSecret) {
		t.Errorf("stdout lacks the secret and the next step:\n%s", res.stdout)
	}
	if !strings.Contains(res.stdout, "ledger left out: it takes live-mode events only") || !strings.Contains(res.stdout, "created webhook endpoint we_") {
		t.Errorf("stdout:\n%s", res.stdout)
	}
	if res.stderr != "oncehook: DATABASE_URL is not set: using this environment's destinations, not those the running instances recorded\n" {
		t.Errorf("stderr:\n%s", res.stderr)
	}

	// STRIPE_API_VERSION pins another version; every event: "*".
	const version = "2024-06-20"
	env = receiverEnv("STRIPE_API_KEY=sk_test_123", "STRIPE_API_BASE="+proxy.url, "STRIPE_API_VERSION="+version)
	if res := runBinary(t, env, "stripe", "endpoint", "create", "--url", "https://hooks.example.com/webhooks/stripe"); res.err != nil {
		t.Fatalf("with STRIPE_API_VERSION: %v\n%s%s", res.err, res.stdout, res.stderr)
	}
	reqs = proxy.requests()
	if len(reqs) != 2 || reqs[1].form.Get("api_version") != version || reqs[1].version != version ||
		!slices.Equal(enabledEventsSent(reqs[1].form), []string{"*"}) {
		t.Errorf("with STRIPE_API_VERSION=%s and the default destination: %+v", version, reqs[1:])
	}
}

// TestStripeEndpointCreateFromTheRecord: with DATABASE_URL, the endpoint
// is for the set the running instances recorded, not this environment's
// default.
func TestStripeEndpointCreateFromTheRecord(t *testing.T) {
	t.Parallel()
	pool, dbURL := testDB(t)
	reg, err := admin.NewRegistration(admin.RegistrationConfig{Store: store.New(pool), Instance: "stripe-endpoint-test",
		Destinations: []route.Destination{{Name: "billing", Filter: route.Filter{Types: []string{"invoice.paid", "invoice.payment_failed"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := reg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Stop(ctx) })
	proxy := newStripeProxy(t, testEndpointSecret)
	env := receiverEnv("STRIPE_API_KEY=sk_test_123", "STRIPE_API_BASE="+proxy.url, "DATABASE_URL="+dbURL)
	res := runBinary(t, env, "stripe", "endpoint", "create", "--url", "https://hooks.example.com/webhooks/stripe")
	if res.err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", res.err, res.stdout, res.stderr)
	}
	reqs := proxy.requests()
	if len(reqs) != 1 || !slices.Equal(enabledEventsSent(reqs[0].form), []string{"invoice.paid", "invoice.payment_failed"}) {
		t.Errorf("requests %+v, want enabled_events invoice.paid, invoice.payment_failed", reqs)
	}
	if !strings.Contains(res.stdout, "billing (invoice.paid,invoice.payment_failed), as the running instances recorded them") || res.stderr != "" {
		t.Errorf("stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	}

	// An environment naming another set is refused, naming --force.
	res = runBinary(t, append(env, "SINK_URL=stdout"), "stripe", "endpoint", "create", "--url", "https://hooks.example.com/webhooks/stripe")
	if res.err == nil || !strings.Contains(res.stderr, "--force") || len(proxy.requests()) != 1 {
		t.Errorf("another set in the environment: %v, %d requests\nstderr:\n%s", res.err, len(proxy.requests()), res.stderr)
	}
}

// TestStripeEndpointCreateDryRunAndErrors: --dry-run prints the request
// and sends nothing, without a key; errors name the problem and send
// nothing; an answer without a secret says where to find it.
func TestStripeEndpointCreateDryRunAndErrors(t *testing.T) {
	t.Parallel()
	proxy := newStripeProxy(t, "")
	base := slices.Clip(receiverEnv("STRIPE_API_BASE="+proxy.url, "SINK_URL=stdout")) // each append copies
	const hook = "https://hooks.example.com/webhooks/stripe"

	res := runBinary(t, base, "stripe", "endpoint", "create", "--url", hook, "--dry-run")
	if res.err != nil {
		t.Fatalf("--dry-run: %v\n%s", res.err, res.stderr)
	}
	wantBody := "api_version=" + stripe.APIVersion + "&description=oncehook%3A+default&enabled_events[0]=%2A&url=https%3A%2F%2Fhooks.example.com%2Fwebhooks%2Fstripe\n"
	if !strings.Contains(res.stdout, "dry run: nothing is sent") || !strings.Contains(res.stdout, "\nPOST "+proxy.url+"/v1/webhook_endpoints\n") ||
		!strings.HasSuffix(res.stdout, "\n\n"+wantBody) {
		t.Errorf("--dry-run stdout:\n%s\nwant the POST and the body %s", res.stdout, wantBody)
	}

	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{base, []string{"--url", hook}, "STRIPE_API_KEY is not set"},
		{append(base, "STRIPE_API_KEY=pk_test_123"), []string{"--url", hook}, "STRIPE_API_KEY: is not a Stripe secret or restricted key"},
		{append(base, "STRIPE_API_KEY=sk_test_123"), []string{"--url", "http://hooks.example.com/webhooks/stripe"}, "http is only for localhost"},
		{append(base, "STRIPE_API_KEY=sk_test_123"), []string{}, `required flag(s) "url" not set`},
		{append(base, "STRIPE_API_KEY=sk_test_123", "SINK_URL=", "DESTINATIONS=live", "DESTINATION_LIVE_URL=stdout", "DESTINATION_LIVE_LIVEMODE=live"),
			[]string{"--url", hook}, "no destination takes test-mode events"},
	} {
		res := runBinary(t, tc.env, append([]string{"stripe", "endpoint", "create"}, tc.args...)...)
		if res.err == nil || !strings.Contains(res.stderr, tc.want) {
			t.Errorf("%q: %v, want an error with %q\nstderr:\n%s", tc.args, res.err, tc.want, res.stderr)
		}
	}
	if n := len(proxy.requests()); n != 0 {
		t.Fatalf("the dry run and the errors sent %d requests", n)
	}

	// stripe-mock's answer has no secret: the endpoint exists, say where
	// the secret is.
	res = runBinary(t, append(base, "STRIPE_API_KEY=sk_test_123"), "stripe", "endpoint", "create", "--url", hook)
	if res.err == nil || !strings.Contains(res.stdout, "created webhook endpoint we_") || !strings.Contains(res.stderr, "no signing secret: reveal it in the Dashboard") {
		t.Errorf("no secret in the answer: %v\nstdout:\n%s\nstderr:\n%s", res.err, res.stdout, res.stderr)
	}
	if n := len(proxy.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}
