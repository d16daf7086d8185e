package sink

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/oncehook/oncehook/dedup"
)

// HTTP is a Sink that POSTs each event's raw body to a URL. A 2xx answer
// means delivered; anything else, or no answer, is an error and is retried.
type HTTP struct {
	url    string
	client *http.Client
	signer *StandardWebhooksSigner // nil: unsigned
	now    func() time.Time
}

// NewHTTP returns an HTTP sink for url. With a signer, requests carry the
// Standard Webhooks headers.
func NewHTTP(url string, signer *StandardWebhooksSigner) *HTTP {
	return &HTTP{
		url: url,
		client: &http.Client{
			Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second},
			// A redirect would turn the POST into a body-less GET whose 2xx
			// is no delivery: a 3xx is a failed attempt instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		signer: signer,
		now:    time.Now,
	}
}

// Deliver sends ev; ctx bounds the whole exchange (DELIVERY_TIMEOUT).
func (s *HTTP) Deliver(ctx context.Context, ev *dedup.Event) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(ev.Payload))
	if err != nil {
		return fmt.Errorf("building request for %s: %w", ev.ID, err)
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("Idempotency-Key", ev.ID)
	h.Set("Stripe-Event-Type", ev.Type)
	if s.signer != nil {
		ts, sig := s.signer.Sign(ev.ID, s.now(), ev.Payload)
		h.Set("webhook-id", ev.ID)
		h.Set("webhook-timestamp", ts)
		h.Set("webhook-signature", sig)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("posting %s: %w", ev.ID, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // reuse the connection
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("posting %s: sink answered %s: %q", ev.ID, resp.Status, snippet)
	}
	return nil
}

// Close releases idle connections.
func (s *HTTP) Close() error {
	s.client.CloseIdleConnections()
	return nil
}
