package stripeapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/form"

	"github.com/oncehook/oncehook/internal/safetext"
)

// DefaultBase is Stripe's API.
const DefaultBase = "https://api.stripe.com"

// DefaultVersion is the API version the stripe-go in go.mod pins.
const DefaultVersion = stripe.APIVersion

// maxPageBytes bounds one answer read from Stripe.
const maxPageBytes = 32 << 20

// maxErrorBodyBytes bounds the part of an error answer (status 400 and
// up) that is read: stripe-go may make a whole error body the error's
// text.
const maxErrorBodyBytes = 64 << 10

// maxErrorTextBytes bounds what APIError.Error prints of the underlying
// error.
const maxErrorTextBytes = 1000

// maxEventIDBytes bounds an event id given to FetchV2Event, and
// maxContextBytes the account sent as Stripe-Context.
const (
	maxEventIDBytes = 255
	maxContextBytes = 255
)

// Config configures a Client.
type Config struct {
	// Key is a secret or restricted key with read access to events. Required.
	Key string
	// Base is the API's base URL. Defaults to DefaultBase.
	Base string
	// Version is sent as Stripe-Version on /v1 calls, so that events are
	// rendered in it. Defaults to DefaultVersion. /v2 calls keep the
	// version stripe-go pins (DefaultVersion): a v1 version, such as a
	// webhook endpoint's, is not one they take.
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
	if !printable(cfg.Key) {
		return nil, errors.New("STRIPE_API_KEY contains whitespace, a control character or invalid UTF-8 (a trailing newline from a secret file?); remove it")
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
	// The key goes in every request's Authorization header: a redirect is
	// never followed, but answered as it is (an APIError).
	hc := &http.Client{
		Timeout:       cfg.Timeout,
		Transport:     &transport{version: cfg.Version, next: http.DefaultTransport},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	backend := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL: stripe.String(strings.TrimRight(cfg.Base, "/")), HTTPClient: hc,
		MaxNetworkRetries: stripe.Int64(0),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	})
	return &Client{backend: backend, key: cfg.Key}, nil
}

// transport sets the Stripe-Version header of /v1 calls (stripe-go always
// sends the version it pins), records each answer's status for APIError,
// and bounds how much of an answer is read.
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
	location    string // of a redirect
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasPrefix(req.URL.Path, "/v1/") {
		req = req.Clone(req.Context())
		req.Header.Set("Stripe-Version", t.version)
	}
	res, err := t.next.RoundTrip(req)
	if res == nil {
		return res, err
	}
	if c, ok := req.Context().Value(callKey{}).(*call); ok {
		c.status, c.shouldRetry, c.requestID = res.StatusCode, res.Header.Get("Stripe-Should-Retry"), res.Header.Get("Request-Id")
		if res.StatusCode >= 300 && res.StatusCode < 400 {
			c.location = res.Header.Get("Location")
		}
	}
	if res.Body != nil {
		if res.StatusCode >= 400 {
			// Cut, not failed: stripe-go then reports the part it read.
			res.Body = &limitedBody{Reader: io.LimitReader(res.Body, maxErrorBodyBytes), Closer: res.Body}
		} else {
			res.Body = http.MaxBytesReader(nil, res.Body, maxPageBytes)
		}
	}
	return res, err
}

// limitedBody is a response body read up to a limit and closed whole.
type limitedBody struct {
	io.Reader
	io.Closer
}

// APIError is a failed call: the HTTP status (0 when none came) and what
// Stripe said.
type APIError struct {
	Status      int
	ShouldRetry string // Stripe-Should-Retry, when sent
	RequestID   string // Request-Id, when sent
	// Need is the access a restricted key needs for the call, named on a
	// 403; empty: read access to Events.
	Need string
	Err  error
}

// Error is a message of bounded length and valid UTF-8: what Stripe said
// is cut to 1000 bytes.
func (e *APIError) Error() string {
	var cause string
	if e.Err != nil {
		cause = safetext.Clean(e.Err.Error(), maxErrorTextBytes)
	}
	var msg string
	switch e.Status {
	case 0:
		msg = "Stripe API unreachable: " + cause
	case http.StatusUnauthorized:
		msg = "Stripe rejected STRIPE_API_KEY (401): " + cause
	case http.StatusForbidden:
		msg = "STRIPE_API_KEY may not read events (403; a restricted key needs read access to Events): " + cause
		if e.Need != "" {
			msg = "STRIPE_API_KEY may not make this call (403; a restricted key needs " + e.Need + "): " + cause
		}
	case http.StatusTooManyRequests:
		msg = "Stripe API rate limit (429): " + cause
	default:
		msg = fmt.Sprintf("Stripe API answered %d: %s", e.Status, cause)
	}
	if e.RequestID != "" {
		msg += " (Request-Id " + safetext.Clean(e.RequestID, 100) + ")"
	}
	return msg
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
	if rec.status >= 300 && rec.status < 400 {
		// Not followed (CheckRedirect); stripe-go takes it for a success
		// or fails to read its body.
		err = fmt.Errorf("redirect to %q not followed", safetext.Clean(rec.location, 200))
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if rec.status >= 200 && rec.status < 300 {
		return fmt.Errorf("Stripe API: reading the answer: %w", err)
	}
	return &APIError{Status: rec.status, ShouldRetry: rec.shouldRetry, RequestID: rec.requestID, Err: err}
}

// rawResponse keeps a response's body.
type rawResponse struct {
	stripe.APIResource
}

// ListParams selects events from GET /v1/events.
type ListParams struct {
	CreatedGTE      time.Time
	CreatedLT       time.Time // zero: no upper bound
	Types           []string  // at most 20
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
	if !lp.CreatedGTE.IsZero() || !lp.CreatedLT.IsZero() {
		params.CreatedRange = &stripe.RangeQueryParams{}
	}
	if !lp.CreatedGTE.IsZero() {
		params.CreatedRange.GreaterThanOrEqual = lp.CreatedGTE.Unix()
	}
	if !lp.CreatedLT.IsZero() {
		params.CreatedRange.LesserThan = lp.CreatedLT.Unix()
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
// thin one, as raw JSON. account, when not empty, is the connected
// account the event happened on (its "context", event.Event.Account),
// sent as Stripe-Context: without it Stripe does not find a connected
// account's event. The answer must be a JSON object with this id and
// object "v2.core.event"; otherwise the error (not an APIError) names
// what differs.
func (c *Client) FetchV2Event(ctx context.Context, id, account string) ([]byte, error) {
	if !strings.HasPrefix(id, "evt_") || len(id) > maxEventIDBytes || strings.ContainsAny(id, "/?#%") || !printable(id) {
		return nil, fmt.Errorf("fetching event %q: not an event id", safetext.Clean(id, 100))
	}
	if len(account) > maxContextBytes || !printable(account) {
		return nil, fmt.Errorf("fetching event %s: account %q cannot be sent as Stripe-Context", id, safetext.Clean(account, 100))
	}
	var res rawResponse
	err := c.do(ctx, func(p *stripe.Params) error {
		if account != "" {
			p.StripeContext = stripe.String(account)
		}
		return c.backend.Call(http.MethodGet, "/v2/core/events/"+url.PathEscape(id), c.key, &v2Params{Params: *p}, &res)
	})
	if err != nil {
		return nil, fmt.Errorf("fetching event %s: %w", id, err)
	}
	if res.LastResponse == nil {
		return nil, fmt.Errorf("fetching event %s: empty answer", id)
	}
	if err := checkV2Event(res.LastResponse.RawJSON, id); err != nil {
		return nil, fmt.Errorf("fetching event %s: %w", id, err)
	}
	return res.LastResponse.RawJSON, nil
}

// printable reports whether s is valid UTF-8 without whitespace or
// control characters.
func printable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) })
}

// checkV2Event checks that body is a JSON object with "id" id and
// "object" "v2.core.event", keys matched exactly.
func checkV2Event(body []byte, id string) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return errors.New("the answer is not a JSON object")
	}
	for _, f := range []struct{ key, want string }{{"id", id}, {"object", "v2.core.event"}} {
		raw, ok := m[f.key]
		if !ok {
			return fmt.Errorf("the answer has no %q, want %q", f.key, f.want)
		}
		var got string
		if err := json.Unmarshal(raw, &got); err != nil {
			return fmt.Errorf("the answer's %q is %s, want %q", f.key, safetext.Clean(string(raw), 100), f.want)
		}
		if got != f.want {
			return fmt.Errorf("the answer's %q is %q, want %q", f.key, safetext.Clean(got, 100), f.want)
		}
	}
	return nil
}

// v2Params are a v2 GET's (no) parameters.
type v2Params struct {
	stripe.Params `form:"*"`
}
