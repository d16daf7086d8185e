package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/redact"
)

// HTTP is a Sink that POSTs each event's raw body to a URL. A 2xx answer
// means delivered; anything else, or no answer, is an error and is retried.
// Its errors, which are logged and stored as last_error, show the URL
// redacted (redact.URL): no password, no query values.
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
			// A 16 KiB write buffer sends most events, headers and body,
			// in one write: with the 4 KiB default, any event over about
			// 3.5 KB took two system calls.
			Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second, WriteBufferSize: 16 << 10},
			// A redirect would turn the POST into a body-less GET whose 2xx
			// is no delivery: a 3xx is a failed attempt instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		signer: signer,
		now:    time.Now,
	}
}

// Deliver sends ev; ctx bounds the whole exchange (DELIVERY_TIMEOUT).
func (s *HTTP) Deliver(ctx context.Context, ev *event.Event) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(ev.Payload))
	if err != nil {
		return s.redact(fmt.Errorf("building request for %s: %w", ev.ID, err))
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("Idempotency-Key", ev.ID)
	h.Set("Stripe-Event-Type", ev.Type)
	if ev.Source != "" {
		h.Set("Oncehook-Source", ev.Source)
	}
	if ev.OrderKey != "" {
		h.Set(HeaderOrderKey, OrderKeyHeader(ev.OrderKey))
	}
	if s.signer != nil {
		ts, sig := s.signer.Sign(ev.ID, s.now(), ev.Payload)
		h.Set("webhook-id", ev.ID)
		h.Set("webhook-timestamp", ts)
		h.Set("webhook-signature", sig)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return s.redact(fmt.Errorf("posting %s: %w", ev.ID, err))
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // reuse the connection
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("posting %s: sink answered %s: %q", ev.ID, resp.Status, snippet)
	}
	return nil
}

// redact removes the URL's credentials from err: from the *url.Error that
// net/http made for this call, so that errors.As finds a clean one too, and
// from the whole text, whatever else in it embeds the URL.
func (s *HTTP) redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = redact.URL(ue.URL)
	}
	return redact.Error(err, s.url)
}

// Close releases idle connections.
func (s *HTTP) Close() error {
	s.client.CloseIdleConnections()
	return nil
}
