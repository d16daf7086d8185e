package stripefake

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// DefaultAPIVersion is the api_version rendered for a request without a
	// Stripe-Version header (stripe-go v82's pinned version).
	DefaultAPIVersion = "2025-08-27.basil"
	// Account is the account id named in permission errors.
	Account = "acct_1FakeStripefake0"
	// MaxRequests is how many request records the server keeps (the latest).
	MaxRequests = 10000
	// ObjectThin is Event.Object for a v2 thin event.
	ObjectThin = "v2.core.event"
)

// Event is one event held by the server.
type Event struct {
	ID       string    // "evt_..."; required and unique
	Type     string    // e.g. "invoice.paid"
	Created  time.Time // kept at second precision, as Stripe; zero means time.Now()
	Livemode bool
	// DeliverySuccess false means Stripe failed to deliver it to some
	// endpoint (delivery_success=false lists it; pending_webhooks is 1).
	DeliverySuccess bool
	// Object is "" or "event" for a v1 snapshot event, or ObjectThin
	// ("v2.core.event") for a thin event, which no v1 path lists or returns.
	Object string
	// Data is the JSON object rendered as data.object, verbatim; nil renders
	// a minimal {"id":...,"object":...} derived from Type and ID.
	Data []byte
}

// Request is one request the server saw.
type Request struct {
	Method   string
	Path     string
	RawQuery string     // exactly as sent, e.g. "limit=100&types[0]=a"
	Query    url.Values // RawQuery parsed
	// Header is a copy of the request headers (Stripe-Version, ...), with
	// Authorization redacted to its scheme and the key's last 4 chars:
	// "Bearer ****abcd".
	Header http.Header
	// Status is the status answered, 0 while the request is in flight (or
	// if the client went away before an answer).
	Status int
}

type failure struct {
	n           int
	status      int
	shouldRetry string
}

type thinFailure struct {
	n      int
	status int
}

type thin struct {
	typ  string
	body []byte
}

// Server is a fake Stripe Events API. All methods are safe for concurrent
// use, also while requests are being served.
type Server struct {
	t      testing.TB
	srv    *httptest.Server
	apiKey string
	done   chan struct{}

	mu        sync.Mutex
	events    map[string]*Event // every added event, by id
	listed    []*Event          // v1 events, in list order (newest first)
	thins     map[string]thin
	forbidden map[string]bool
	fail      failure
	thinFail  map[string]thinFailure
	hold      chan struct{}
	reqs      []*Request
	seq       int
}

// New starts a fake accepting apiKey; it is closed in t.Cleanup.
func New(t testing.TB, apiKey string) *Server {
	t.Helper()
	s := &Server{
		t:         t,
		apiKey:    apiKey,
		done:      make(chan struct{}),
		events:    map[string]*Event{},
		thins:     map[string]thin{},
		forbidden: map[string]bool{},
		thinFail:  map[string]thinFailure{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		close(s.done) // releases held requests, so Close does not wait on them
		s.srv.Close()
	})
	return s
}

// URL is the base URL to give a client, e.g. stripe-go's BackendConfig.URL.
func (s *Server) URL() string { return s.srv.URL }

// Add adds events. An event without an ID, with an ID already added, or
// with an unknown Object fails the test (with t.Errorf) and is skipped.
func (s *Server) Add(evs ...Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range evs {
		switch {
		case ev.ID == "":
			s.t.Errorf("stripefake: Add: event without an ID (type %q)", ev.Type)
			continue
		case s.events[ev.ID] != nil:
			s.t.Errorf("stripefake: Add: event %s added twice", ev.ID)
			continue
		case ev.Object != "" && ev.Object != "event" && ev.Object != ObjectThin:
			s.t.Errorf("stripefake: Add: event %s has unknown object %q", ev.ID, ev.Object)
			continue
		case ev.Data != nil && !isJSONObject(ev.Data):
			s.t.Errorf("stripefake: Add: event %s: Data is not a JSON object", ev.ID)
			continue
		}
		if ev.Created.IsZero() {
			ev.Created = time.Now()
		}
		ev.Created = time.Unix(ev.Created.Unix(), 0).UTC()
		if ev.Object == "" {
			ev.Object = "event"
		}
		ev.Data = slices.Clone(ev.Data)
		e := &ev
		s.events[e.ID] = e
		if e.Object == "event" {
			i, _ := slices.BinarySearchFunc(s.listed, e, cmpOrder)
			s.listed = slices.Insert(s.listed, i, e)
		}
	}
}

// Body is the exact JSON the server serves for event id: for a v1 event as
// rendered for a request without a Stripe-Version header (BodyVersion for
// another version); for a thin event its /v2/core/events/{id} body. It is
// nil for an unknown id.
func (s *Server) Body(id string) []byte { return s.BodyVersion(id, DefaultAPIVersion) }

// BodyVersion is Body for a request with Stripe-Version apiVersion.
func (s *Server) BodyVersion(id, apiVersion string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if th, ok := s.thins[id]; ok {
		return slices.Clone(th.body)
	}
	ev := s.events[id]
	switch {
	case ev == nil:
		return nil
	case ev.Object == ObjectThin:
		return renderThin(ev)
	default:
		return renderV1(ev, apiVersion)
	}
}

// FailNext makes the next n requests (to any path) answer status (400–599)
// with a Stripe error body, before authentication. shouldRetry "true" or
// "false" sets the Stripe-Should-Retry header; "" sends none. It replaces
// any failure still pending; n <= 0 clears it.
func (s *Server) FailNext(n, status int, shouldRetry string) {
	if n > 0 && (status < 400 || status > 599) {
		s.t.Errorf("stripefake: FailNext: status %d is not an error", status)
		return
	}
	if shouldRetry != "" && shouldRetry != "true" && shouldRetry != "false" {
		s.t.Errorf("stripefake: FailNext: shouldRetry %q is not \"\", \"true\" or \"false\"", shouldRetry)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = failure{n: max(n, 0), status: status, shouldRetry: shouldRetry}
}

// SetForbidden makes requests with key answer 403, as for a restricted key
// without the rak_event_read permission. It takes precedence over the key
// given to New.
func (s *Server) SetForbidden(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forbidden[key] = true
}

// Requests returns a copy of the requests seen, oldest first (the latest
// MaxRequests of them).
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.reqs))
	for i, r := range s.reqs {
		out[i] = *r
		out[i].Query = cloneValues(r.Query)
		out[i].Header = r.Header.Clone()
	}
	return out
}

// AddThin registers full, a complete v2 event JSON object, as the body of
// GET /v2/core/events/{id}. A body that is not a JSON object, or whose "id"
// or "type" differs from id or typ, fails the test and is skipped. AddThin
// lists nothing in v1.
func (s *Server) AddThin(id, typ string, full []byte) {
	if err := checkThin(id, typ, full); err != nil {
		s.t.Errorf("stripefake: AddThin(%s): %v", id, err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.thins[id] = thin{typ: typ, body: slices.Clone(full)}
}

// FailThin makes the next n fetches of GET /v2/core/events/{id} that pass
// authentication answer status (400–599) with a v2 error body. n <= 0
// clears it.
func (s *Server) FailThin(id string, n, status int) {
	if n > 0 && (status < 400 || status > 599) {
		s.t.Errorf("stripefake: FailThin: status %d is not an error", status)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		delete(s.thinFail, id)
		return
	}
	s.thinFail[id] = thinFailure{n: n, status: status}
}

// Hold makes requests that arrive from now on wait, after being recorded,
// until block is closed (or the client gives up, or the test ends). Hold(nil)
// stops holding new requests; requests already waiting keep waiting for the
// channel they saw.
func (s *Server) Hold(block chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hold = block
}

// serve handles one request.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	rec, gate, reqID := s.record(r)
	w.Header().Set("Request-Id", reqID)
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		case <-s.done:
			s.reply(w, rec, http.StatusServiceUnavailable, nil, errBody("api_error", "", "", "The fake Stripe server is shutting down."))
			return
		}
	}

	if f, ok := s.takeFailure(); ok {
		h := http.Header{}
		if f.shouldRetry != "" {
			h.Set("Stripe-Should-Retry", f.shouldRetry)
		}
		s.reply(w, rec, f.status, h, injectedError(f.status))
		return
	}

	key := apiKeyOf(r)
	switch {
	case key == "":
		s.reply(w, rec, http.StatusUnauthorized, http.Header{"Www-Authenticate": {`Basic realm="Stripe"`}},
			errBody("invalid_request_error", "", "", "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/."))
		return
	case s.isForbidden(key):
		s.reply(w, rec, http.StatusForbidden, nil, errBody("invalid_request_error", "", "",
			fmt.Sprintf("The provided key '%s' does not have the required permissions for this endpoint on account '%s'. Having the 'rak_event_read' permission would allow this request to continue.", redactKey(key), Account)))
		return
	case key != s.apiKey:
		s.reply(w, rec, http.StatusUnauthorized, http.Header{"Www-Authenticate": {`Basic realm="Stripe"`}},
			errBody("invalid_request_error", "", "", "Invalid API Key provided: "+redactKey(key)))
		return
	}

	version := r.Header.Get("Stripe-Version")
	if version == "" {
		version = DefaultAPIVersion
	}
	status, body := s.route(r, version)
	s.reply(w, rec, status, http.Header{"Stripe-Version": {version}}, body)
}

// route answers an authenticated request.
func (s *Server) route(r *http.Request, version string) (int, []byte) {
	path := r.URL.Path
	if r.Method == http.MethodGet {
		switch {
		case path == "/v1/events":
			return s.list(r.URL.RawQuery, version)
		case strings.HasPrefix(path, "/v1/events/") && isID(path[len("/v1/events/"):]):
			return s.retrieve(path[len("/v1/events/"):], r.URL.RawQuery, version)
		case strings.HasPrefix(path, "/v2/core/events/") && isID(path[len("/v2/core/events/"):]):
			return s.retrieveThin(path[len("/v2/core/events/"):], r.URL.RawQuery)
		}
	}
	return http.StatusNotFound, errBody("invalid_request_error", "", "",
		fmt.Sprintf("Unrecognized request URL (%s: %s). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.", r.Method, path))
}

func (s *Server) record(r *http.Request) (*Request, chan struct{}, string) {
	h := r.Header.Clone()
	if a := h.Get("Authorization"); a != "" {
		h.Set("Authorization", redactAuthorization(a))
	}
	q, _ := url.ParseQuery(r.URL.RawQuery)
	rec := &Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Query: q, Header: h}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	if len(s.reqs) >= MaxRequests {
		s.reqs = slices.Delete(s.reqs, 0, len(s.reqs)-MaxRequests+1)
	}
	s.reqs = append(s.reqs, rec)
	return rec, s.hold, fmt.Sprintf("req_fake%08d", s.seq)
}

func (s *Server) takeFailure() (failure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail.n <= 0 {
		return failure{}, false
	}
	s.fail.n--
	return s.fail, true
}

func (s *Server) takeThinFailure(id string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.thinFail[id]
	if !ok {
		return 0, false
	}
	if f.n--; f.n <= 0 {
		delete(s.thinFail, id)
	} else {
		s.thinFail[id] = f
	}
	return f.status, true
}

func (s *Server) isForbidden(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.forbidden[key]
}

func (s *Server) reply(w http.ResponseWriter, rec *Request, status int, h http.Header, body []byte) {
	for k, v := range h {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	s.mu.Lock()
	rec.Status = status
	s.mu.Unlock()
}

// apiKeyOf is the key of a Bearer or Basic (key as user) Authorization.
func apiKeyOf(r *http.Request) string {
	a := r.Header.Get("Authorization")
	if k, ok := strings.CutPrefix(a, "Bearer "); ok {
		return strings.TrimSpace(k)
	}
	if u, _, ok := r.BasicAuth(); ok {
		return u
	}
	return ""
}

// redactKey renders a key as Stripe does in error messages:
// "sk_test_****...abcd".
func redactKey(key string) string {
	prefix := ""
	for _, p := range []string{"sk_test_", "sk_live_", "rk_test_", "rk_live_", "pk_test_", "pk_live_"} {
		if strings.HasPrefix(key, p) {
			prefix = p
			break
		}
	}
	rest := key[len(prefix):]
	if len(rest) <= 4 {
		return prefix + strings.Repeat("*", len(rest))
	}
	return prefix + strings.Repeat("*", len(rest)-4) + rest[len(rest)-4:]
}

// redactAuthorization keeps the scheme and the last 4 chars of the
// credential: "Bearer ****abcd".
func redactAuthorization(a string) string {
	scheme, cred, ok := strings.Cut(a, " ")
	if !ok {
		scheme, cred = "", a
	} else {
		scheme += " "
	}
	if len(cred) > 4 {
		cred = cred[len(cred)-4:]
	} else {
		cred = ""
	}
	return scheme + "****" + cred
}

// isID reports whether a path segment can be an object id.
func isID(s string) bool {
	return s != "" && !strings.ContainsAny(s, "/")
}

func cloneValues(v url.Values) url.Values {
	if v == nil {
		return nil
	}
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}
