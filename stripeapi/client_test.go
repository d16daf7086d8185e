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
	"unicode/utf8"

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
			// The Request-Id of the answer, when there was one, is kept
			// and printed: it is what Stripe's support asks for.
			if tc.status != 0 {
				if !strings.HasPrefix(apiErr.RequestID, "req_fake") || !strings.Contains(err.Error(), "Request-Id "+apiErr.RequestID) {
					t.Errorf("RequestID %q, error %q; want the fake's req_fake... in both", apiErr.RequestID, err)
				}
			} else if apiErr.RequestID != "" || strings.Contains(err.Error(), "Request-Id") {
				t.Errorf("no answer, yet RequestID %q, error %q", apiErr.RequestID, err)
			}
			// The same failure on a thin-event fetch, wrapped with the id.
			if tc.fail != 0 {
				fake.FailNext(1, tc.fail, tc.shouldRetry)
			}
			_, err = c.FetchV2Event(ctx, "evt_err_1", "")
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
// exact bytes registered, with the key and stripe-go's own Stripe-Version
// (the configured one is a v1 version, for ListEvents only), and with
// Stripe-Context when an account is given; unknown ids and injected
// failures are APIErrors; ids that are not event ids or would change the
// path, and accounts that cannot be a header, are refused without a
// request.
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

	const account = "acct_1ConnectedThin0001"
	for _, acct := range []string{"", account} {
		got, err := c.FetchV2Event(ctx, "evt_thin_f1", acct)
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
		if got := r.Header.Values("Stripe-Version"); len(got) != 1 || got[0] != stripe.APIVersion {
			t.Errorf("Stripe-Version %q, want stripe-go's %q, not the configured v1 version %q", got, stripe.APIVersion, specVersion)
		}
		if got, want := r.Header.Get("Authorization"), "Bearer ****"+testKey[len(testKey)-4:]; got != want {
			t.Errorf("Authorization %q, want %q", got, want)
		}
		if got := r.Header.Values("Stripe-Context"); (acct == "" && len(got) != 0) || (acct != "" && (len(got) != 1 || got[0] != acct)) {
			t.Errorf("account %q: Stripe-Context %q", acct, got)
		}
	}
	// ListEvents on the same client sends the configured version.
	if _, err := c.ListEvents(ctx, stripeapi.ListParams{}); err != nil {
		t.Fatal(err)
	}
	reqs := fake.Requests()
	if r := reqs[len(reqs)-1]; r.Path != "/v1/events" || r.Header.Get("Stripe-Version") != specVersion {
		t.Errorf("%s: Stripe-Version %q, want the configured %q", r.Path, r.Header.Get("Stripe-Version"), specVersion)
	}

	// A failure, then the same fetch succeeds.
	fake.FailThin("evt_thin_f1", 1, 500)
	_, err := c.FetchV2Event(ctx, "evt_thin_f1", account)
	var apiErr *stripeapi.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 500 || !apiErr.Retryable() {
		t.Errorf("injected 500: %T %v; want a retryable APIError 500", err, err)
	}
	if got, err := c.FetchV2Event(ctx, "evt_thin_f1", account); err != nil || !bytes.Equal(got, full) {
		t.Errorf("after the failure: %v, %s", err, got)
	}

	_, err = c.FetchV2Event(ctx, "evt_thin_missing", "")
	if !errors.As(err, &apiErr) || apiErr.Status != 404 || apiErr.Retryable() {
		t.Errorf("unknown id: %T %v; want a non-retryable APIError 404", err, err)
	}

	before := len(fake.Requests())
	for _, tc := range []struct{ id, account string }{
		{"", ""}, {"evt_1/../../v1/events", ""}, {"evt_1?limit=1", ""}, {"evt_1#x", ""}, {"evt_1%2Fx", ""}, {"../v1/events", ""},
		{"in_1", ""}, {"evt", ""}, {"EVT_1", ""}, {"evt_1\n", ""}, {"evt_1 x", ""}, {"evt_\xff", ""},
		{"evt_" + strings.Repeat("a", 252), ""}, // 256 bytes
		{"evt_thin_f1", account + "\n"}, {"evt_thin_f1", "acct 1"}, {"evt_thin_f1", "acct_\x00"}, {"evt_thin_f1", strings.Repeat("a", 256)},
	} {
		if _, err := c.FetchV2Event(ctx, tc.id, tc.account); err == nil {
			t.Errorf("FetchV2Event(%q, %q): no error", tc.id, tc.account)
		} else if errors.As(err, &apiErr) {
			t.Errorf("FetchV2Event(%q, %q): %v, want a refusal before any request", tc.id, tc.account, err)
		} else if !utf8.ValidString(err.Error()) || len(err.Error()) > 400 {
			t.Errorf("FetchV2Event(%q, %q): error %q is not short valid UTF-8", tc.id, tc.account, err)
		}
	}
	if n := len(fake.Requests()) - before; n != 0 {
		t.Errorf("bad ids sent %d requests, want none", n)
	}
	// 255 bytes is an id still.
	long := "evt_" + strings.Repeat("a", 251)
	if _, err := c.FetchV2Event(ctx, long, ""); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("a 255-byte id: %v, want it asked for (404)", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.FetchV2Event(cctx, "evt_thin_f1", ""); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: %v, want context.Canceled", err)
	}
}

// TestFetchV2EventChecksTheAnswer: a 200 that is not the event asked for
// (another id, another object, not an object, keys in another case) is
// an error naming what differs, and not an APIError; the id is
// path-escaped in the request.
func TestFetchV2EventChecksTheAnswer(t *testing.T) {
	t.Parallel()
	const id = "evt_check_1"
	var mu sync.Mutex
	var uris []string
	answer := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		uris = append(uris, r.RequestURI)
		body := answer[r.URL.Path]
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	set := func(path, body string) {
		mu.Lock()
		defer mu.Unlock()
		answer[path] = body
	}
	c := newClient(t, stripeapi.Config{Key: testKey, Base: srv.URL})
	ctx := testCtx(t)
	for _, tc := range []struct{ body, mention string }{
		{`{"id":"evt_other","object":"v2.core.event","type":"a.b"}`, `"evt_other"`},
		{`{"id":"evt_check_1","object":"event","type":"a.b"}`, `"event"`},
		{`{"id":"evt_check_1","type":"a.b"}`, `no "object"`},
		{`{"object":"v2.core.event","type":"a.b"}`, `no "id"`},
		{`{"ID":"evt_check_1","object":"v2.core.event"}`, `no "id"`},
		{`{"id":"evt_check_1","OBJECT":"v2.core.event"}`, `no "object"`},
		{`{"id":1,"object":"v2.core.event"}`, `"id"`},
		{`{"id":"evt_check_1","object":null}`, `"object"`},
		{`[{"id":"evt_check_1","object":"v2.core.event"}]`, "cannot unmarshal array"}, // stripe-go's own check
		{`null`, "not a JSON object"},
		{`{"id":"` + strings.Repeat("\u00e9", 5000) + `","object":"v2.core.event"}`, `"id"`},
	} {
		set("/v2/core/events/"+id, tc.body)
		got, err := c.FetchV2Event(ctx, id, "")
		if err == nil {
			t.Errorf("answer %.80s: no error, %s", tc.body, got)
			continue
		}
		var apiErr *stripeapi.APIError
		if errors.As(err, &apiErr) {
			t.Errorf("answer %.80s: %v is an APIError", tc.body, err)
		}
		if msg := err.Error(); !strings.Contains(msg, tc.mention) || !strings.Contains(msg, id) || len(msg) > 400 || !utf8.ValidString(msg) {
			t.Errorf("answer %.80s: error %q does not name %s and the id in short valid UTF-8", tc.body, msg, tc.mention)
		}
	}
	good := `{"object":"v2.core.event","id":"evt_check_1","type":"a.b","data":{"id":"x","object":"y"}}`
	set("/v2/core/events/"+id, good)
	if got, err := c.FetchV2Event(ctx, id, ""); err != nil || string(got) != good {
		t.Errorf("a good answer: %v, %s", err, got)
	}

	// The id is one path segment, escaped as such.
	const odd = "evt_1;x,y"
	set("/v2/core/events/"+odd, `{"id":"evt_1;x,y","object":"v2.core.event"}`)
	if _, err := c.FetchV2Event(ctx, odd, ""); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	last := uris[len(uris)-1]
	mu.Unlock()
	if want := "/v2/core/events/" + url.PathEscape(odd); last != want {
		t.Errorf("request URI %q, want %q", last, want)
	}
}

// TestStripeVersionOnlyOnV1: the configured version goes on /v1 calls
// only; /v2 calls keep stripe-go's.
func TestStripeVersionOnlyOnV1(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	versions := map[string][]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		versions[r.URL.Path] = r.Header.Values("Stripe-Version")
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/events":
			_, _ = io.WriteString(w, `{"object":"list","has_more":false,"url":"/v1/events","data":[]}`)
		case "/v2/core/events/evt_v_1":
			_, _ = io.WriteString(w, `{"id":"evt_v_1","object":"v2.core.event"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	const old = "2020-08-27"
	ctx := testCtx(t)
	c := newClient(t, stripeapi.Config{Key: testKey, Base: srv.URL, Version: old})
	if _, err := c.ListEvents(ctx, stripeapi.ListParams{}); err != nil {
		t.Fatalf("ListEvents: %v", err)
	}
	if _, err := c.FetchV2Event(ctx, "evt_v_1", ""); err != nil {
		t.Fatalf("FetchV2Event: %v", err)
	}
	mu.Lock()
	v1, v2 := versions["/v1/events"], versions["/v2/core/events/evt_v_1"]
	mu.Unlock()
	if len(v1) != 1 || v1[0] != old {
		t.Errorf("/v1 Stripe-Version %q, want the configured %q", v1, old)
	}
	if len(v2) != 1 || v2[0] != stripe.APIVersion {
		t.Errorf("/v2 Stripe-Version %q, want stripe-go's %q", v2, stripe.APIVersion)
	}
}

// TestErrorTextIsBounded: stripe-go makes an error answer without an
// "error" key its error's whole text. Such an answer is read up to 64
// KiB, and APIError.Error prints at most 1000 bytes of it, as valid
// UTF-8, with the Request-Id.
func TestErrorTextIsBounded(t *testing.T) {
	t.Parallel()
	big := func(w io.Writer) {
		// 1 MiB of valid JSON, with a 2-byte character across stripe-go's
		// 500-byte sample cut.
		_, _ = io.WriteString(w, `{"mx":"`)
		chunk := strings.Repeat("é", 1<<10)
		for range 512 {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, `"}`)
	}
	for _, tc := range []struct {
		name   string
		status int
		write  func(io.Writer)
	}{
		{"1 MiB without an error key", 500, big},
		{"1 MiB 400", 400, big},
		{"invalid UTF-8 without an error key", 500, func(w io.Writer) { _, _ = io.WriteString(w, "{\"message\":\"Erreur \xe9\xff\"}") }},
		{"not JSON", 502, func(w io.Writer) { _, _ = io.WriteString(w, "<html>\xe9"+strings.Repeat("x", 200000)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Request-Id", "req_bounded_1")
				w.WriteHeader(tc.status)
				tc.write(w)
			}))
			t.Cleanup(srv.Close)
			c := newClient(t, stripeapi.Config{Key: testKey, Base: srv.URL})
			ctx := testCtx(t)
			_, listErr := c.ListEvents(ctx, stripeapi.ListParams{})
			_, fetchErr := c.FetchV2Event(ctx, "evt_bounded_1", "")
			for _, err := range []error{listErr, fetchErr} {
				var apiErr *stripeapi.APIError
				if !errors.As(err, &apiErr) || apiErr.Status != tc.status || apiErr.RequestID != "req_bounded_1" {
					t.Fatalf("%T %.300v; want an APIError %d with its Request-Id", err, err, tc.status)
				}
				msg := err.Error()
				if len(msg) > 1200 || !utf8.ValidString(msg) || strings.IndexByte(msg, 0) >= 0 {
					t.Errorf("error text of %d bytes (valid UTF-8 %t): %.300q...", len(msg), utf8.ValidString(msg), msg)
				}
				if !strings.Contains(msg, strconv.Itoa(tc.status)) || !strings.Contains(msg, "Request-Id req_bounded_1") {
					t.Errorf("error %q does not name the status and the Request-Id", msg)
				}
				// What stripe-go made of the answer is bounded too.
				if n := len(apiErr.Err.Error()); n > 65<<10 {
					t.Errorf("the underlying error is %d bytes: more than the 64 KiB read", n)
				}
			}
		})
	}
}

// TestRedirectsAreNotFollowed: a redirect is answered as an APIError with
// its status, and the key never goes to where it points.
func TestRedirectsAreNotFollowed(t *testing.T) {
	t.Parallel()
	var hits sync.Map
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Store(r.URL.Path, r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"list","has_more":false,"data":[],"id":"evt_redir_1"}`)
	}))
	t.Cleanup(target.Close)
	for _, status := range []int{301, 302, 307, 308} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+r.URL.Path, status)
		}))
		t.Cleanup(srv.Close)
		c := newClient(t, stripeapi.Config{Key: testKey, Base: srv.URL})
		ctx := testCtx(t)
		_, listErr := c.ListEvents(ctx, stripeapi.ListParams{})
		_, fetchErr := c.FetchV2Event(ctx, "evt_redir_1", "")
		for _, err := range []error{listErr, fetchErr} {
			var apiErr *stripeapi.APIError
			if !errors.As(err, &apiErr) || apiErr.Status != status || apiErr.Retryable() {
				t.Errorf("redirect %d: %T %v; want a non-retryable APIError %d", status, err, err, status)
			} else if !strings.Contains(err.Error(), target.URL) {
				t.Errorf("redirect %d: error %q does not say where it pointed", status, err)
			}
		}
	}
	hits.Range(func(path, auth any) bool {
		t.Errorf("the redirect was followed to %s (Authorization %q)", path, auth)
		return true
	})
}

// TestNewChecksConfig: New refuses an empty key, a key with whitespace
// (a trailing newline from a secret file) naming STRIPE_API_KEY but not
// the key, and a base URL that is not http(s); a base with a trailing
// slash works.
func TestNewChecksConfig(t *testing.T) {
	t.Parallel()
	if _, err := stripeapi.New(stripeapi.Config{}); err == nil {
		t.Error("empty key: no error")
	}
	for _, key := range []string{testKey + "\n", testKey + "\r\n", " " + testKey, testKey + "\t", "sk_test_a b", testKey + "\u00a0", testKey + "\x00", testKey + "\xff"} {
		_, err := stripeapi.New(stripeapi.Config{Key: key})
		if err == nil {
			t.Errorf("key %q: no error", key)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "STRIPE_API_KEY") || !strings.Contains(msg, "whitespace") || strings.Contains(msg, "sk_test_") {
			t.Errorf("key %q: error %q; want it to name STRIPE_API_KEY and whitespace, not the key", key, msg)
		}
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
