package receiver

import (
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/oncehook/oncehook/event"
)

// BenchmarkVerifyAndParse is the request path's CPU work before dedup:
// Stripe-Signature verification (two configured secrets, the match second,
// as while rolling a secret) and reading the event's fields.
func BenchmarkVerifyAndParse(b *testing.B) {
	v, err := NewVerifier([]string{"whsec_old_endpoint_secret", secretA}, 5*time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		body []byte
	}{
		{"3KB", []byte(snapshotEventBody)},
		{"60KB", largeInvoiceEvent(60 << 10)},
	} {
		header := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: bc.body, Secret: secretA}).Header
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.body)))
			for b.Loop() {
				if err := v.Verify(bc.body, header); err != nil {
					b.Fatal(err)
				}
				if _, err := event.Parse(bc.body); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
