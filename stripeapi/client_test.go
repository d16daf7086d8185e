package stripeapi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82"

	"github.com/oncehook/oncehook/internal/stripefake"
	"github.com/oncehook/oncehook/internal/stripemock"
	"github.com/oncehook/oncehook/stripeapi"
)

// specVersion is the API version of the OpenAPI spec bundled with the
// stripe-mock version stripemock installs (v0.203.0): with
// -strict-version-check it accepts this Stripe-Version and no other.
const specVersion = "2026-08-26.dahlia"

const testKey = "sk_test_stripeapi_0123456789"

// mockRequest is what a proxy in front of stripe-mock saw.
type mockRequest struct {
	path, rawQuery string
	query          url.Values
	header         http.Header
	status         int
}

// mockProxy is a reverse proxy in front of stripe-mock that records the
// requests it forwards and the answers' statuses, so that a test can check
// what the client put on the wire as well as stripe-mock's verdict on it.
type mockProxy struct {
	mu   sync.Mutex
	reqs []mockRequest
}

func startMockProxy(t *testing.T, stripeMockURL string) (string, *mockProxy) {
	t.Helper()
	target, err := url.Parse(stripeMockURL)
	if err != nil {
		t.Fatal(err)
	}
	p := &mockProxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(res *http.Response) error {
		r := res.Request
		q, _ := url.ParseQuery(r.URL.RawQuery)
		p.mu.Lock()
		p.reqs = append(p.reqs, mockRequest{path: r.URL.Path, rawQuery: r.URL.RawQuery, query: q, header: r.Header.Clone(), status: res.StatusCode})
		p.mu.Unlock()
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL, p
}

func (p *mockProxy) requests() []mockRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.reqs)
}

func newClient(t *testing.T, cfg stripeapi.Config) *stripeapi.Client {
	t.Helper()
	c, err := stripeapi.New(cfg)
	if err != nil {
		t.Fatalf("stripeapi.New(%+v): %v", cfg, err)
	}
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestListEventsWireFormatStripeMock runs ListEvents with every filter
// against the real stripe-mock, which validates each query parameter
// against Stripe's OpenAPI spec and answers 400 to anything it does not
// allow. Success shows that the request is one Stripe accepts; stripe-mock
// answers canned data, so of the page only its shape is checked. A proxy in
// front of stripe-mock shows the parameters were really sent.
//
// The same stripe-mock then gets requests built by hand that the spec
// forbids, and must answer 400: the validation relied on is on.
func TestListEventsWireFormatStripeMock(t *testing.T) {
	t.Parallel()
	mock := stripemock.Start(t)
	t.Run("invalid requests are rejected", func(t *testing.T) { checkStripeMockValidates(t, mock) })
	base, proxy := startMockProxy(t, mock)
	c := newClient(t, stripeapi.Config{Key: "sk_test_123", Base: base})
	since := time.Now().Add(-72 * time.Hour).Truncate(time.Second)
	page, err := c.ListEvents(testCtx(t), stripeapi.ListParams{
		CreatedGTE:      since,
		Types:           []string{"invoice.paid", "invoice.payment_failed"},
		DeliverySuccess: stripe.Bool(false),
		Limit:           100,
	})
	if err != nil {
		t.Fatalf("ListEvents against stripe-mock: %v", err)
	}
	if len(page.Events) == 0 {
		t.Fatal("stripe-mock's canned page parsed to no events")
	}
	for _, ev := range page.Events {
		if !strings.HasPrefix(ev.ID, "evt_") || ev.Type == "" || ev.Created.IsZero() {
			t.Errorf("parsed event %+v: want an evt_ id, a type and a created time", ev)
		}
		if !bytes.Contains(ev.Raw, []byte(`"id": "`+ev.ID+`"`)) && !bytes.Contains(ev.Raw, []byte(`"id":"`+ev.ID+`"`)) {
			t.Errorf("Raw of %s does not hold its id:\n%s", ev.ID, ev.Raw)
		}
	}

	reqs := proxy.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests reached stripe-mock, want 1", len(reqs))
	}
	r := reqs[0]
	if r.path != "/v1/events" || r.status != http.StatusOK {
		t.Fatalf("request %s answered %d", r.path, r.status)
	}
	for k, want := range map[string]string{
		"created[gte]":     strconv.FormatInt(since.Unix(), 10),
		"delivery_success": "false",
		"limit":            "100",
		"types[0]":         "invoice.paid",
		"types[1]":         "invoice.payment_failed",
	} {
		if got := r.query.Get(k); got != want {
			t.Errorf("query %s = %q, want %q (query %s)", k, got, want, r.rawQuery)
		}
	}
	if len(r.query) != 5 {
		t.Errorf("query has %d parameters, want 5: %s", len(r.query), r.rawQuery)
	}
	if got := r.header.Get("Stripe-Version"); got != stripeapi.DefaultVersion {
		t.Errorf("Stripe-Version %q, want the default %q", got, stripeapi.DefaultVersion)
	}
}

// TestStripeVersionHeaderStripeMock uses the real stripe-mock started with
// -strict-version-check, which rejects every Stripe-Version but that of its
// spec: a client configured with the spec's version is answered 200, one
// with the default (stripe-go's pinned version) 400. So the header on the
// wire is the configured version, not the one stripe-go sets.
func TestStripeVersionHeaderStripeMock(t *testing.T) {
	t.Parallel()
	base := stripemock.Start(t, "-strict-version-check")
	ctx := testCtx(t)
	if stripeapi.DefaultVersion == specVersion {
		t.Fatalf("stripe-go's version %s is stripe-mock's: this test cannot tell them apart", specVersion)
	}

	c := newClient(t, stripeapi.Config{Key: "sk_test_123", Base: base, Version: specVersion})
	page, err := c.ListEvents(ctx, stripeapi.ListParams{Types: []string{"invoice.paid"}, Limit: 10})
	if err != nil {
		t.Fatalf("Version %s against strict stripe-mock: %v", specVersion, err)
	}
	if len(page.Events) == 0 {
		t.Error("strict stripe-mock: no events parsed")
	}

	c = newClient(t, stripeapi.Config{Key: "sk_test_123", Base: base})
	_, err = c.ListEvents(ctx, stripeapi.ListParams{})
	var apiErr *stripeapi.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest {
		t.Fatalf("default version %s against strict stripe-mock: %T %v; want an APIError 400", stripeapi.DefaultVersion, err, err)
	}
	if apiErr.Retryable() {
		t.Error("a 400 is retryable")
	}
	// The error names both versions: it is the version check that failed,
	// and the spec's version is the one this test assumes.
	for _, want := range []string{stripeapi.DefaultVersion, specVersion} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the 400 does not name %s: %v", want, err)
		}
	}
}

// checkStripeMockValidates checks that the stripe-mock at base answers
// 400 to requests built by hand which the spec forbids.
func checkStripeMockValidates(t *testing.T, base string) {
	for _, q := range []string{
		"?types=invoice.paid", // a string where the spec wants an array
		"?delivery_success=notabool",
		"?created[gte]=yesterday",
		"?no_such_param=1",
	} {
		req, err := http.NewRequest(http.MethodGet, base+"/v1/events"+q, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer sk_test_123")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "invalid_request_error") {
			t.Errorf("GET /v1/events%s: %d, want 400 invalid_request_error\n%s", q, resp.StatusCode, body)
		}
	}
}

// TestListEventsPages reads events from stripefake page by page: newest
// first, HasMore until the last page, each Raw exactly the bytes the server
// rendered, and the configured Stripe-Version and key on every request.
func TestListEventsPages(t *testing.T) {
	t.Parallel()
	fake := stripefake.New(t, testKey)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	var want []string // newest first
	for i := range 5 {
		id := fmt.Sprintf("evt_page_%d", i)
		fake.Add(stripefake.Event{ID: id, Type: "invoice.paid", Created: t0.Add(time.Duration(i) * time.Minute),
			Data: []byte(`{"id":"in_` + strconv.Itoa(i) + `","object":"invoice","customer_name":"Zoë <&> 佐藤"}`)})
		want = slices.Insert(want, 0, id)
	}
	ctx := testCtx(t)
	for _, version := range []string{"", specVersion} {
		t.Run("version="+version, func(t *testing.T) {
			c := newClient(t, stripeapi.Config{Key: testKey, Base: fake.URL(), Version: version})
			wantVersion := version
			if wantVersion == "" {
				wantVersion = stripeapi.DefaultVersion
			}
			before := len(fake.Requests())
			var got []string
			var hasMore []bool
			after := ""
			for range 5 {
				page, err := c.ListEvents(ctx, stripeapi.ListParams{Limit: 2, StartingAfter: after})
				if err != nil {
					t.Fatal(err)
				}
				hasMore = append(hasMore, page.HasMore)
				for _, ev := range page.Events {
					got = append(got, ev.ID)
					if body := fake.BodyVersion(ev.ID, wantVersion); !bytes.Equal(ev.Raw, body) {
						t.Errorf("Raw of %s:\n%s\nwant the bytes served:\n%s", ev.ID, ev.Raw, body)
					}
					if ev.Type != "invoice.paid" {
						t.Errorf("%s: type %q", ev.ID, ev.Type)
					}
					n, _ := strconv.Atoi(strings.TrimPrefix(ev.ID, "evt_page_"))
					if wantCreated := t0.Add(time.Duration(n) * time.Minute); !ev.Created.Equal(wantCreated) {
						t.Errorf("%s: created %v, want %v", ev.ID, ev.Created, wantCreated)
					}
				}
				if !page.HasMore {
					break
				}
				after = page.Events[len(page.Events)-1].ID
			}
			if !slices.Equal(got, want) {
				t.Errorf("listed %v, want %v", got, want)
			}
			if !slices.Equal(hasMore, []bool{true, true, false}) {
				t.Errorf("HasMore per page %v, want [true true false]", hasMore)
			}
			reqs := fake.Requests()[before:]
			if len(reqs) != 3 {
				t.Fatalf("%d requests, want 3", len(reqs))
			}
			for i, r := range reqs {
				if got := r.Header.Get("Stripe-Version"); got != wantVersion {
					t.Errorf("request %d: Stripe-Version %q, want %q", i, got, wantVersion)
				}
				if got, want := r.Header.Get("Authorization"), "Bearer ****"+testKey[len(testKey)-4:]; got != want {
					t.Errorf("request %d: Authorization %q, want %q", i, got, want)
				}
				if vs := r.Header.Values("Stripe-Version"); len(vs) != 1 {
					t.Errorf("request %d: Stripe-Version sent %d times: %q", i, len(vs), vs)
				}
			}
			if reqs[0].Query.Has("starting_after") || reqs[1].Query.Get("starting_after") != want[1] {
				t.Errorf("cursors: %q, %q", reqs[0].RawQuery, reqs[1].RawQuery)
			}
		})
	}
}

// TestListEventsFilters checks against stripefake that every ListParams
// field reaches the server with its meaning: created at or after, the
// types, delivery_success=false, and limit (100 when not given).
func TestListEventsFilters(t *testing.T) {
	t.Parallel()
	fake := stripefake.New(t, testKey)
	since := time.Now().Add(-time.Hour).Truncate(time.Second)
	fake.Add(
		stripefake.Event{ID: "evt_f_old", Type: "invoice.paid", Created: since.Add(-time.Second)},
		stripefake.Event{ID: "evt_f_at", Type: "invoice.paid", Created: since},
		stripefake.Event{ID: "evt_f_delivered", Type: "invoice.paid", Created: since.Add(time.Minute), DeliverySuccess: true},
		stripefake.Event{ID: "evt_f_other", Type: "charge.succeeded", Created: since.Add(time.Minute)},
		stripefake.Event{ID: "evt_f_failed", Type: "invoice.payment_failed", Created: since.Add(2 * time.Minute)},
	)
	c := newClient(t, stripeapi.Config{Key: testKey, Base: fake.URL()})
	ctx := testCtx(t)
	page, err := c.ListEvents(ctx, stripeapi.ListParams{
		CreatedGTE: since, Types: []string{"invoice.paid", "invoice.payment_failed"}, DeliverySuccess: stripe.Bool(false),
	})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ev := range page.Events {
		ids = append(ids, ev.ID)
	}
	if want := []string{"evt_f_failed", "evt_f_at"}; !slices.Equal(ids, want) || page.HasMore {
		t.Errorf("listed %v (has_more %t), want %v", ids, page.HasMore, want)
	}
	reqs := fake.Requests()
	if q := reqs[len(reqs)-1].Query; q.Get("limit") != "100" {
		t.Errorf("limit %q, want 100 by default (query %s)", q.Get("limit"), reqs[len(reqs)-1].RawQuery)
	}

	before := len(fake.Requests())
	types := make([]string, 21)
	for i := range types {
		types[i] = fmt.Sprintf("t.%d", i)
	}
	if _, err := c.ListEvents(ctx, stripeapi.ListParams{Types: types}); err == nil {
		t.Error("21 types: no error")
	}
	if n := len(fake.Requests()) - before; n != 0 {
		t.Errorf("21 types: %d requests sent, want none", n)
	}
}

// TestAPIErrors maps each failure to an APIError with its status and
// whether it is worth retrying.
func TestAPIErrors(t *testing.T) {
	t.Parallel()
	fake := stripefake.New(t, testKey)
	const forbiddenKey = "rk_test_no_event_read_1234"
	fake.SetForbidden(forbiddenKey)
	fake.Add(stripefake.Event{ID: "evt_err_1", Type: "invoice.paid"})
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	ctx := testCtx(t)
	for _, tc := range []struct {
		name        string
		key, base   string
		fail        int    // FailNext status, 0 for none
		shouldRetry string // FailNext's Stripe-Should-Retry
		status      int
		retryable   bool
		mention     string
	}{
		{name: "wrong key", key: "sk_test_wrong_key_9999", status: 401, mention: "401"},
		{name: "forbidden", key: forbiddenKey, status: 403, mention: "403"},
		{name: "rate limit", fail: 429, status: 429, retryable: true, mention: "429"},
		{name: "server error", fail: 500, status: 500, retryable: true, mention: "500"},
		{name: "503 should not retry", fail: 503, shouldRetry: "false", status: 503, mention: "503"},
		{name: "400 should retry", fail: 400, shouldRetry: "true", status: 400, retryable: true, mention: "400"},
		{name: "bad request", fail: 400, status: 400, mention: "400"},
		{name: "unreachable", base: closed.URL, status: 0, retryable: true, mention: "unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, base := testKey, fake.URL()
			if tc.key != "" {
				key = tc.key
			}
			if tc.base != "" {
				base = tc.base
			}
			if tc.fail != 0 {
				fake.FailNext(1, tc.fail, tc.shouldRetry)
				defer fake.FailNext(0, 0, "")
			}
			c := newClient(t, stripeapi.Config{Key: key, Base: base})
			_, err := c.ListEvents(ctx, stripeapi.ListParams{})
			var apiErr *stripeapi.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("ListEvents: %T %v, want an APIError", err, err)
			}
			if apiErr.Status != tc.status || apiErr.Retryable() != tc.retryable || apiErr.ShouldRetry != tc.shouldRetry {
				t.Errorf("APIError status %d, ShouldRetry %q, retryable %t; want %d, %q, %t (%v)",
					apiErr.Status, apiErr.ShouldRetry, apiErr.Retryable(), tc.status, tc.shouldRetry, tc.retryable, err)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %s", err, tc.mention)
			}
			if strings.Contains(err.Error(), key) {
				t.Errorf("error %q holds the whole key", err)
			}
			// The same failure on a thin-event fetch, wrapped with the id.
			if tc.fail != 0 {
				fake.FailNext(1, tc.fail, tc.shouldRetry)
			}
			_, err = c.FetchV2Event(ctx, "evt_err_1")
			if !errors.As(err, &apiErr) || apiErr.Status != tc.status || apiErr.Retryable() != tc.retryable {
				t.Errorf("FetchV2Event: %T %v; want an APIError %d (retryable %t)", err, err, tc.status, tc.retryable)
			}
			if !strings.Contains(fmt.Sprint(err), "evt_err_1") {
				t.Errorf("FetchV2Event error %q does not name the event", err)
			}
		})
	}
}

// TestFetchV2Event fetches thin events' full bodies from stripefake: the
// exact bytes registered, with the configured version and key; unknown ids
// and injected failures are APIErrors; ids that would change the path are
// refused without a request.
func TestFetchV2Event(t *testing.T) {
	t.Parallel()
	fake := stripefake.New(t, testKey)
	full := []byte(`{
  "id": "evt_thin_f1",
  "object": "v2.core.event",
  "type": "v1.billing.meter.error_report_triggered",
  "created": "2026-11-29T12:00:00.000Z",
  "data": {"developer_message_summary": "Zoë <&> 佐藤 \u00e9", "reason": {"error_count": 3}},
  "related_object": {"id": "mtr_1", "type": "billing.meter", "url": "/v1/billing/meters/mtr_1"},
  "livemode": false,
  "context": null,
  "reason": null
}`)
	fake.AddThin("evt_thin_f1", "v1.billing.meter.error_report_triggered", full)
	c := newClient(t, stripeapi.Config{Key: testKey, Base: fake.URL(), Version: specVersion})
	ctx := testCtx(t)

	got, err := c.FetchV2Event(ctx, "evt_thin_f1")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, full) {
		t.Errorf("fetched:\n%s\nwant the registered body:\n%s", got, full)
	}
	reqs := fake.Requests()
	r := reqs[len(reqs)-1]
	if r.Method != http.MethodGet || r.Path != "/v2/core/events/evt_thin_f1" || r.RawQuery != "" {
		t.Errorf("request %s %s?%s", r.Method, r.Path, r.RawQuery)
	}
	if got := r.Header.Get("Stripe-Version"); got != specVersion {
		t.Errorf("Stripe-Version %q, want %q", got, specVersion)
	}
	if got, want := r.Header.Get("Authorization"), "Bearer ****"+testKey[len(testKey)-4:]; got != want {
		t.Errorf("Authorization %q, want %q", got, want)
	}

	// A failure, then the same fetch succeeds.
	fake.FailThin("evt_thin_f1", 1, 500)
	_, err = c.FetchV2Event(ctx, "evt_thin_f1")
	var apiErr *stripeapi.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 500 || !apiErr.Retryable() {
		t.Errorf("injected 500: %T %v; want a retryable APIError 500", err, err)
	}
	if got, err := c.FetchV2Event(ctx, "evt_thin_f1"); err != nil || !bytes.Equal(got, full) {
		t.Errorf("after the failure: %v, %s", err, got)
	}

	_, err = c.FetchV2Event(ctx, "evt_thin_missing")
	if !errors.As(err, &apiErr) || apiErr.Status != 404 || apiErr.Retryable() {
		t.Errorf("unknown id: %T %v; want a non-retryable APIError 404", err, err)
	}

	before := len(fake.Requests())
	for _, id := range []string{"", "evt_1/../../v1/events", "evt_1?limit=1", "evt_1#x", "evt_1%2Fx", "../v1/events"} {
		if _, err := c.FetchV2Event(ctx, id); err == nil {
			t.Errorf("FetchV2Event(%q): no error", id)
		} else if errors.As(err, &apiErr) {
			t.Errorf("FetchV2Event(%q): %v, want a refusal before any request", id, err)
		}
	}
	if n := len(fake.Requests()) - before; n != 0 {
		t.Errorf("bad ids sent %d requests, want none", n)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.FetchV2Event(cctx, "evt_thin_f1"); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: %v, want context.Canceled", err)
	}
}

// TestNewChecksConfig: New refuses an empty key and a base URL that is not
// http(s); a base with a trailing slash works.
func TestNewChecksConfig(t *testing.T) {
	t.Parallel()
	if _, err := stripeapi.New(stripeapi.Config{}); err == nil {
		t.Error("empty key: no error")
	}
	for _, base := range []string{"ftp://api.stripe.com", "api.stripe.com", "http://", "https:///v1", "://x", "http://[::1"} {
		if _, err := stripeapi.New(stripeapi.Config{Key: testKey, Base: base}); err == nil {
			t.Errorf("base %q: no error", base)
		}
	}
	if _, err := stripeapi.New(stripeapi.Config{Key: testKey}); err != nil {
		t.Errorf("defaults: %v", err)
	}
	fake := stripefake.New(t, testKey)
	fake.Add(stripefake.Event{ID: "evt_slash", Type: "invoice.paid"})
	c := newClient(t, stripeapi.Config{Key: testKey, Base: fake.URL() + "/"})
	if page, err := c.ListEvents(testCtx(t), stripeapi.ListParams{}); err != nil || len(page.Events) != 1 {
		t.Errorf("base with a trailing slash: %d events, %v", len(page.Events), err)
	}
}

// TestBadAnswers: an answer larger than the client's bound, or a 200 that
// is not a list, is an error, not a crash or a partial page.
func TestBadAnswers(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Query().Get("limit") {
		case "1": // over 32 MiB
			_, _ = io.WriteString(w, `{"object":"list","has_more":false,"url":"/v1/events","data":[{"id":"evt_big","type":"a.b","created":1,"pad":"`)
			chunk := bytes.Repeat([]byte("a"), 1<<20)
			for range 33 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
			_, _ = io.WriteString(w, `"}]}`)
		case "2":
			_, _ = io.WriteString(w, `{"object":"event","id":"evt_1","type":"a.b"}`)
		default:
			_, _ = io.WriteString(w, `{"object":"list","has_more":false,"url":"/v1/events","data":[{"id":"evt_1","created":1}]}`)
		}
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, stripeapi.Config{Key: testKey, Base: srv.URL})
	ctx := testCtx(t)
	for limit, what := range map[int64]string{1: "an answer over the bound", 2: "an object, not a list", 3: "an event without a type"} {
		page, err := c.ListEvents(ctx, stripeapi.ListParams{Limit: limit})
		if err == nil {
			t.Errorf("%s: no error, %d events", what, len(page.Events))
			continue
		}
		var apiErr *stripeapi.APIError
		if errors.As(err, &apiErr) {
			t.Errorf("%s: %v, an APIError though the answer was 200", what, err)
		}
		t.Logf("%s: %v", what, err)
	}
}
