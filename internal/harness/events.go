package harness

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"
)

// EventBody is a pretty-printed snapshot event, as Stripe sends one.
func EventBody(id, typ string) []byte {
	return fmt.Appendf(nil, `{
  "id": %q,
  "object": "event",
  "api_version": "2025-08-27.basil",
  "created": %d,
  "data": {
    "object": {
      "id": "in_1Qx",
      "object": "invoice",
      "amount_paid": 4200,
      "currency": "eur",
      "customer_name": "Zoë Ångström 佐藤",
      "metadata": {"order": "ünïcode ✓"}
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {"id": null, "idempotency_key": null},
  "type": %q
}`, id, time.Now().Unix(), typ)
}

// Sign returns a Stripe-Signature header for body, signed now with Secret.
func Sign(body []byte) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: Secret}).Header
}

// Response is one webhook answer.
type Response struct {
	Code int
	Body string
}

// client is shared so that tests reuse connections, like Stripe does.
var client = &http.Client{
	Timeout:   30 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 256},
}

// Post sends body with a fresh valid signature to url.
func Post(t testing.TB, url string, body []byte) Response {
	t.Helper()
	return PostSigned(t, url, body, Sign(body))
}

// PostSigned sends body with the given Stripe-Signature header ("" for none).
func PostSigned(t testing.TB, url string, body []byte, sig string) Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set("Stripe-Signature", sig)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("posting to %s: %v", url, err)
		return Response{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return Response{Code: resp.StatusCode, Body: string(b)}
}
