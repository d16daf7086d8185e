package receiver

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/stripe/stripe-go/v82/webhook"
	"github.com/valyala/fasthttp"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/testenv"
)

// FuzzHandler drives the whole request path, with a real Postgres behind
// it: whatever the method, path, header and body, the handler answers a
// status of the HTTP contract with a JSON body, and a 200 only for a body
// that is a valid event with a valid signature.
func FuzzHandler(f *testing.F) {
	s := newTestServer(f, testenv.Postgres(f), nil)
	f.Add("POST", "/webhooks/stripe", "", []byte(snapshotEventBody), true)
	f.Add("POST", "/webhooks/stripe", "t=1,v1=00", []byte(`{"id":"evt_1","type":"x"}`), false)
	f.Add("GET", "/webhooks/stripe", "", []byte{}, false)
	f.Add("POST", "/readyz", "", []byte("{}"), true)
	f.Add("POST", "/webhooks/stripe", "", []byte(`{"id":"evt_\u0000","type":"x"}`), true)
	f.Add("PUT", "/x", "t=99999999999999999999,v1=zz", []byte(`[`), false)
	f.Fuzz(func(t *testing.T, method, path, sig string, body []byte, sign bool) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(method)
		ctx.Request.SetRequestURI(path)
		if sign {
			sig = webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secretA}).Header
		}
		if sig != "" {
			ctx.Request.Header.Set("Stripe-Signature", sig)
		}
		ctx.Request.SetBody(body)
		s.Handle(&ctx)
		code := ctx.Response.StatusCode()
		if !slices.Contains([]int{200, 400, 404, 405, 503}, code) {
			t.Fatalf("status %d is not in the HTTP contract", code)
		}
		if !json.Valid(ctx.Response.Body()) {
			t.Fatalf("body %q is not JSON", ctx.Response.Body())
		}
		if code == 200 && string(ctx.Path()) == WebhookPath {
			if _, err := event.Parse(body); err != nil {
				t.Fatalf("200 for a body event.Parse rejects: %v", err)
			}
			if webhook.ValidatePayloadIgnoringTolerance(body, string(ctx.Request.Header.Peek("Stripe-Signature")), secretA) != nil {
				t.Fatal("200 for a body without a valid signature")
			}
		}
	})
}
