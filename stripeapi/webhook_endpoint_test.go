package stripeapi_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stripe/stripe-go/v82"

	"github.com/oncehook/oncehook/internal/stripemock"
	"github.com/oncehook/oncehook/stripeapi"
)

// TestCreateWebhookEndpointStripeMock creates an endpoint on stripe-mock,
// which checks the form against Stripe's OpenAPI spec (a wildcard such as
// invoice.* or an unknown api_version gets a 400), and compares the body
// with WebhookEndpointRequest's.
func TestCreateWebhookEndpointStripeMock(t *testing.T) {
	t.Parallel()
	base := stripemock.Start(t)
	c := newClient(t, stripeapi.Config{Key: "sk_test_123", Base: base}) // the form of key stripe-mock takes
	p := stripeapi.EndpointParams{URL: "https://hooks.example.com/webhooks/stripe", EnabledEvents: []string{"invoice.paid", "customer.created"},
		APIVersion: stripe.APIVersion, Description: "oncehook: billing", Connect: true}
	ep, err := c.CreateWebhookEndpoint(testCtx(t), p)
	if err != nil {
		t.Fatal(err)
	}
	// stripe-mock echoes the parameters it was sent, but no secret.
	if !strings.HasPrefix(ep.ID, "we_") || ep.URL != p.URL || ep.APIVersion != stripe.APIVersion || !slices.Equal(ep.EnabledEvents, p.EnabledEvents) || ep.Secret != "" {
		t.Errorf("endpoint %+v", ep)
	}
	method, u, body, err := stripeapi.WebhookEndpointRequest(base, p)
	form, _ := url.ParseQuery(body)
	if err != nil || method != http.MethodPost || u != base+"/v1/webhook_endpoints" ||
		form.Get("enabled_events[1]") != "customer.created" || form.Get("connect") != "true" || form.Get("api_version") != stripe.APIVersion {
		t.Errorf("WebhookEndpointRequest: %v %s %s %s", err, method, u, body)
	}

	for _, bad := range []stripeapi.EndpointParams{
		{URL: p.URL, EnabledEvents: []string{"invoice.*"}, APIVersion: stripe.APIVersion},
		{URL: p.URL, EnabledEvents: []string{"invoice.paid"}, APIVersion: "1999-01-01"},
	} {
		_, err := c.CreateWebhookEndpoint(testCtx(t), bad)
		var apiErr *stripeapi.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest {
			t.Errorf("%+v: %v, want a 400 from stripe-mock", bad, err)
		}
	}
	if _, err := c.CreateWebhookEndpoint(testCtx(t), stripeapi.EndpointParams{URL: p.URL, APIVersion: stripe.APIVersion}); err == nil {
		t.Error("no enabled events: no error")
	}
}

// TestCreateWebhookEndpointAnswers: a secret is returned when it looks
// like one; a 403 names the access a restricted key lacks.
func TestCreateWebhookEndpointAnswers(t *testing.T) {
	t.Parallel()
	var answer atomic.Pointer[string]
	set := func(s string) { answer.Store(&s) }
	set("")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		a := *answer.Load()
		if a == "403" {
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"error":{"type":"invalid_request_error","message":"The provided key does not have the required permissions"}}`)
			return
		}
		_, _ = io.WriteString(w, `{"object":"webhook_endpoint","id":"we_1","url":"https://h/webhooks/stripe","livemode":true,"secret":`+a+`}`)
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, stripeapi.Config{Key: "rk_live_x", Base: srv.URL})
	p := stripeapi.EndpointParams{URL: "https://h/webhooks/stripe", EnabledEvents: []string{"*"}, APIVersion: stripe.APIVersion}

	set(`"whsec_abc"`)
	if ep, err := c.CreateWebhookEndpoint(testCtx(t), p); err != nil || ep.Secret != "whsec_abc" || !ep.Livemode {
		t.Errorf("%+v, %v", ep, err)
	}
	set(`"whsec_a b\u0007"`)
	if ep, err := c.CreateWebhookEndpoint(testCtx(t), p); err == nil || ep.Secret != "" || !strings.Contains(err.Error(), "we_1") {
		t.Errorf("a secret with a space and a control character: %+v, %v", ep, err)
	}
	set("403")
	_, err := c.CreateWebhookEndpoint(testCtx(t), p)
	if err == nil || !strings.Contains(err.Error(), "write access to Webhook Endpoints") {
		t.Errorf("403: %v", err)
	}
}
