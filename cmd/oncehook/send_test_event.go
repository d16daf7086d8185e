package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"github.com/oncehook/oncehook/internal/redact"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"
)

// sendTestEvent posts one signed payment_intent.succeeded event, signed with
// the first STRIPE_WEBHOOK_SECRET, and prints the answer. Sending the same
// -id twice shows deduplication.
func sendTestEvent(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("send-test-event", flag.ContinueOnError)
	target := fs.String("url", "http://127.0.0.1:8080/webhooks/stripe", "receiver webhook URL")
	id := fs.String("id", "", "event id (default: a new evt_test_ id)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	secret, _, _ := strings.Cut(os.Getenv("STRIPE_WEBHOOK_SECRET"), ",")
	if !strings.HasPrefix(secret, "whsec_") {
		return fmt.Errorf("STRIPE_WEBHOOK_SECRET: set it to the receiver's secret (whsec_...)")
	}
	if *id == "" {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		*id = "evt_test_" + hex.EncodeToString(b)
	}
	body := fmt.Sprintf(`{
  "id": %q,
  "object": "event",
  "api_version": "2025-08-27.basil",
  "created": %d,
  "data": {
    "object": {
      "id": "pi_test_oncehook",
      "object": "payment_intent",
      "amount": 2000,
      "currency": "eur",
      "status": "succeeded"
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {"id": null, "idempotency_key": null},
  "type": "payment_intent.succeeded"
}`, *id, time.Now().Unix())
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: []byte(body), Secret: secret})

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, *target, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", signed.Header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("posting to %s: %w", redact.URL(*target), redact.Error(err, *target))
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Printf("%s %s\n", resp.Status, answer)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("receiver answered %s", resp.Status)
	}
	return nil
}
