package stripeapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/form"
)

// DefaultBase is Stripe's API.
const DefaultBase = "https://api.stripe.com"

// DefaultVersion is the API version the stripe-go in go.mod pins.
const DefaultVersion = stripe.APIVersion

// maxPageBytes bounds one answer read from Stripe.
const maxPageBytes = 32 << 20

// Config configures a Client.
type Config struct {
	// Key is a secret or restricted key with read access to events. Required.
	Key string
	// Base is the API's base URL. Defaults to DefaultBase.
	Base string
	// Version is sent as Stripe-Version, so that events are rendered in
	// it. Defaults to DefaultVersion.
	Version string
	// Timeout bounds one request. Defaults to 30s.
	Timeout time.Duration
}

// Client reads events from Stripe's API through stripe-go. It retries
// nothing itself: callers decide, with APIError.Retryable.
type Client struct {
	backend stripe.Backend
	key     string
}

// New returns a Client, or an error naming what is wrong with cfg.
func New(cfg Config) (*Client, error) {
	if cfg.Key == "" {
		return nil, errors.New("STRIPE_API_KEY is not set")
	}
	if cfg.Base == "" {
		cfg.Base = DefaultBase
	}
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	u, err := url.Parse(cfg.Base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errors.New("STRIPE_API_BASE is not an http(s) URL such as https://api.stripe.com")
	}
	hc := &http.Client{Timeout: cfg.Timeout, Transport: &transport{version: cfg.Version, next: http.DefaultTransport}}
	backend := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL: stripe.String(strings.TrimRight(cfg.Base, "/")), HTTPClient: hc,
		MaxNetworkRetries: stripe.Int64(0),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	})
	return &Client{backend: backend, key: cfg.Key}, nil
}

// transport sets the Stripe-Version header (stripe-go always sends the
// version it pins) and records each answer's status for APIError.
type transport struct {
	version string
	next    http.RoundTripper
}

type callKey struct{}

// call is one API call's last answer, recorded by transport.
type call struct {
	status      int
	shouldRetry string
	requestID   string
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Stripe-Version", t.version)
	res, err := t.next.RoundTrip(req)
	if c, ok := req.Context().Value(callKey{}).(*call); ok && res != nil {
		c.status, c.shouldRetry, c.requestID = res.StatusCode, res.Header.Get("Stripe-Should-Retry"), res.Header.Get("Request-Id")
	}
	if res != nil && res.Body != nil {
		res.Body = http.MaxBytesReader(nil, res.Body, maxPageBytes)
	}
	return res, err
}

// APIError is a failed call: the HTTP status (0 when none came) and what
// Stripe said.
type APIError struct {
	Status      int
	ShouldRetry string // Stripe-Should-Retry, when sent
	Err         error
}

func (e *APIError) Error() string {
	switch e.Status {
	case 0:
		return fmt.Sprintf("Stripe API unreachable: %v", e.Err)
	case http.StatusUnauthorized:
		return fmt.Sprintf("Stripe rejected STRIPE_API_KEY (401): %v", e.Err)
	case http.StatusForbidden:
		return fmt.Sprintf("STRIPE_API_KEY may not read events (403; a restricted key needs read access to Events): %v", e.Err)
	case http.StatusTooManyRequests:
		return fmt.Sprintf("Stripe API rate limit (429): %v", e.Err)
	}
	return fmt.Sprintf("Stripe API answered %d: %v", e.Status, e.Err)
}

func (e *APIError) Unwrap() error { return e.Err }

// Retryable reports whether the call may succeed if made again: when
// Stripe says so, or on a rate limit, a server error or no answer.
func (e *APIError) Retryable() bool {
	switch e.ShouldRetry {
	case "true":
		return true
	case "false":
		return false
	}
	return e.Status == 0 || e.Status == http.StatusTooManyRequests || e.Status == http.StatusConflict || e.Status >= 500
}

// do runs one call through stripe-go and wraps its error.
func (c *Client) do(ctx context.Context, f func(p *stripe.Params) error) error {
	rec := &call{}
	p := &stripe.Params{Context: context.WithValue(ctx, callKey{}, rec)}
	err := f(p)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if rec.status >= 200 && rec.status < 300 {
		return fmt.Errorf("Stripe API: reading the answer: %w", err)
	}
	return &APIError{Status: rec.status, ShouldRetry: rec.shouldRetry, Err: err}
}

// rawResponse keeps a response's body.
type rawResponse struct {
	stripe.APIResource
}

// ListParams selects events from GET /v1/events.
type ListParams struct {
	CreatedGTE      time.Time
	Types           []string // at most 20
	DeliverySuccess *bool
	StartingAfter   string
	Limit           int64 // 1 to 100; defaults to 100
}

// ListedEvent is one event of a page, with its raw JSON as Stripe sent it.
type ListedEvent struct {
	ID      string
	Type    string
	Created time.Time
	Raw     json.RawMessage
}

// Page is one page of GET /v1/events, newest first.
type Page struct {
	Events  []ListedEvent
	HasMore bool
}

// ListEvents reads one page of GET /v1/events.
func (c *Client) ListEvents(ctx context.Context, lp ListParams) (Page, error) {
	if lp.Limit <= 0 || lp.Limit > 100 {
		lp.Limit = 100
	}
	if len(lp.Types) > 20 {
		return Page{}, fmt.Errorf("listing events: %d types, Stripe takes at most 20", len(lp.Types))
	}
	params := &stripe.EventListParams{DeliverySuccess: lp.DeliverySuccess}
	params.Limit = stripe.Int64(lp.Limit)
	if !lp.CreatedGTE.IsZero() {
		params.CreatedRange = &stripe.RangeQueryParams{GreaterThanOrEqual: lp.CreatedGTE.Unix()}
	}
	if len(lp.Types) > 0 {
		params.Types = stripe.StringSlice(lp.Types)
	}
	if lp.StartingAfter != "" {
		params.StartingAfter = stripe.String(lp.StartingAfter)
	}
	// Backend.Call takes only a Params container (it panics on a list's,
	// which has no Metadata field), so the query is encoded here, as
	// stripe-go's own list iterators do, and sent with CallRaw.
	q := &form.Values{}
	form.AppendTo(q, params)
	var res rawResponse
	err := c.do(ctx, func(p *stripe.Params) error {
		return c.backend.CallRaw(http.MethodGet, "/v1/events", c.key, []byte(q.Encode()), p, &res)
	})
	if err != nil {
		return Page{}, err
	}
	return parsePage(res.LastResponse)
}

// parsePage reads a list's data as raw events.
func parsePage(r *stripe.APIResponse) (Page, error) {
	if r == nil {
		return Page{}, errors.New("listing events: empty answer")
	}
	var list struct {
		Object  string            `json:"object"`
		HasMore bool              `json:"has_more"`
		Data    []json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(r.RawJSON, &list); err != nil {
		return Page{}, fmt.Errorf("listing events: the answer is not a list: %w", err)
	}
	if list.Object != "list" {
		return Page{}, fmt.Errorf("listing events: the answer is not a list (object %q)", list.Object)
	}
	page := Page{HasMore: list.HasMore, Events: make([]ListedEvent, 0, len(list.Data))}
	for i, raw := range list.Data {
		var head struct {
			ID      string `json:"id"`
			Type    string `json:"type"`
			Created int64  `json:"created"`
		}
		if err := json.Unmarshal(raw, &head); err != nil || head.ID == "" || head.Type == "" {
			return Page{}, fmt.Errorf("listing events: item %d has no id or type", i)
		}
		page.Events = append(page.Events, ListedEvent{ID: head.ID, Type: head.Type, Created: time.Unix(head.Created, 0), Raw: raw})
	}
	return page, nil
}

// FetchV2Event reads GET /v2/core/events/{id}: the full event behind a
// thin one, as raw JSON.
func (c *Client) FetchV2Event(ctx context.Context, id string) ([]byte, error) {
	if id == "" || strings.ContainsAny(id, "/?#%") {
		return nil, fmt.Errorf("fetching event %q: not an event id", id)
	}
	var res rawResponse
	err := c.do(ctx, func(p *stripe.Params) error {
		return c.backend.Call(http.MethodGet, "/v2/core/events/"+id, c.key, &v2Params{Params: *p}, &res)
	})
	if err != nil {
		return nil, fmt.Errorf("fetching event %s: %w", id, err)
	}
	if res.LastResponse == nil || !json.Valid(res.LastResponse.RawJSON) {
		return nil, fmt.Errorf("fetching event %s: the answer is not JSON", id)
	}
	return res.LastResponse.RawJSON, nil
}

// v2Params are a v2 GET's (no) parameters.
type v2Params struct {
	stripe.Params `form:"*"`
}
