package stripefake_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/stripefake"
)

const key = "sk_test_51FakeKeyForStripefakeTestsAbCd1234"

var base = time.Unix(1_750_000_000, 0)

type page struct {
	Object  string            `json:"object"`
	URL     string            `json:"url"`
	HasMore bool              `json:"has_more"`
	Data    []json.RawMessage `json:"data"`
}

type wireEvent struct {
	ID              string `json:"id"`
	Object          string `json:"object"`
	APIVersion      string `json:"api_version"`
	Created         int64  `json:"created"`
	Type            string `json:"type"`
	Livemode        bool   `json:"livemode"`
	PendingWebhooks int    `json:"pending_webhooks"`
	Data            struct {
		Object map[string]any `json:"object"`
	} `json:"data"`
}

type stripeErr struct {
	Error struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Param   string `json:"param"`
		Message string `json:"message"`
	} `json:"error"`
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, s *stripefake.Server, method, apiKey, path string, hdr ...string) resp {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp{res.StatusCode, res.Header, body}
}

func get(t *testing.T, s *stripefake.Server, path string, hdr ...string) resp {
	t.Helper()
	return do(t, s, http.MethodGet, key, path, hdr...)
}

// list GETs /v1/events?query and decodes a 200 page.
func list(t *testing.T, s *stripefake.Server, query string) page {
	t.Helper()
	r := get(t, s, "/v1/events?"+query)
	if r.status != http.StatusOK {
		t.Fatalf("GET /v1/events?%s: %d %s", query, r.status, r.body)
	}
	var p page
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("decode page: %v\n%s", err, r.body)
	}
	if p.Object != "list" || p.URL != "/v1/events" {
		t.Fatalf("page object %q url %q", p.Object, p.URL)
	}
	return p
}

func ids(t *testing.T, p page) []string {
	t.Helper()
	out := make([]string, len(p.Data))
	for i, raw := range p.Data {
		var ev wireEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		out[i] = ev.ID
	}
	return out
}

func listIDs(t *testing.T, s *stripefake.Server, query string) []string {
	t.Helper()
	return ids(t, list(t, s, query))
}

// wantError checks r is status with a Stripe error body of errType whose
// message contains msg.
func wantError(t *testing.T, r resp, status int, errType, msg string) stripeErr {
	t.Helper()
	var e stripeErr
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body: %v\n%s", err, r.body)
	}
	if r.status != status || e.Error.Type != errType || !strings.Contains(e.Error.Message, msg) {
		t.Fatalf("got %d %s, want %d type %s message containing %q", r.status, r.body, status, errType, msg)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	return e
}

// fill adds n events with created ties (3 per second) and ids whose order
// differs from insertion order; it returns them in list order.
func fill(s *stripefake.Server, n int) []stripefake.Event {
	evs := make([]stripefake.Event, n)
	for i := range evs {
		evs[i] = stripefake.Event{
			ID:              fmt.Sprintf("evt_%04d", (i*37)%n),
			Type:            []string{"invoice.paid", "invoice.created", "customer.created", "charge.succeeded"}[i%4],
			Created:         base.Add(time.Duration(i/3) * time.Second),
			DeliverySuccess: i%5 != 0,
		}
	}
	s.Add(evs...)
	return sorted(evs)
}

func sorted(evs []stripefake.Event) []stripefake.Event {
	out := slices.Clone(evs)
	slices.SortFunc(out, func(a, b stripefake.Event) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return out
}

func idsOf(evs []stripefake.Event, keep func(stripefake.Event) bool) []string {
	var out []string
	for _, ev := range evs {
		if keep == nil || keep(ev) {
			out = append(out, ev.ID)
		}
	}
	return out
}

func TestPagingStartingAfterVisitsEachOnceInOrder(t *testing.T) {
	s := stripefake.New(t, key)
	want := idsOf(fill(s, 250), nil)

	var got []string
	var hasMore []bool
	query := "limit=100"
	for {
		p := list(t, s, query)
		for _, raw := range p.Data {
			var ev wireEvent
			if err := json.Unmarshal(raw, &ev); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(raw, s.Body(ev.ID)) {
				t.Fatalf("list bytes of %s differ from Body:\n%s\n%s", ev.ID, raw, s.Body(ev.ID))
			}
			got = append(got, ev.ID)
		}
		hasMore = append(hasMore, p.HasMore)
		if !p.HasMore {
			break
		}
		query = "limit=100&starting_after=" + got[len(got)-1]
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged ids differ from newest-first order:\n got %v\nwant %v", got, want)
	}
	if !slices.Equal(hasMore, []bool{true, true, false}) {
		t.Fatalf("has_more per page = %v, want [true true false]", hasMore)
	}
	// Default limit is 10.
	if n := len(list(t, s, "").Data); n != 10 {
		t.Fatalf("default page has %d events, want 10", n)
	}
}

func TestEventBodyAndAPIVersion(t *testing.T) {
	s := stripefake.New(t, key)
	s.Add(stripefake.Event{ID: "evt_1", Type: "customer.subscription.updated", Created: base.Add(1500 * time.Millisecond), Livemode: true},
		stripefake.Event{ID: "evt_2", Type: "invoice.paid", Created: base, DeliverySuccess: true, Data: []byte(`{"id":"in_9","object":"invoice","note":"Zoë <&>"}`)})

	want := `{"id":"evt_1","object":"event","api_version":"2025-08-27.basil","created":1750000001,"data":{"object":{"id":"sub_1","object":"subscription"}},"livemode":true,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null},"type":"customer.subscription.updated"}`
	if got := string(s.Body("evt_1")); got != want {
		t.Fatalf("Body:\n got %s\nwant %s", got, want)
	}
	if r := get(t, s, "/v1/events/evt_1"); r.status != 200 || string(r.body) != want {
		t.Fatalf("retrieve: %d %s", r.status, r.body)
	}
	if got := string(s.Body("evt_2")); !strings.Contains(got, `"data":{"object":{"id":"in_9","object":"invoice","note":"Zoë <&>"}},"livemode":false,"pending_webhooks":0,`) {
		t.Fatalf("Body with Data: %s", got)
	}

	r := get(t, s, "/v1/events?limit=2", "Stripe-Version", "2024-06-20")
	if r.header.Get("Stripe-Version") != "2024-06-20" {
		t.Errorf("response Stripe-Version %q", r.header.Get("Stripe-Version"))
	}
	var p page
	if err := json.Unmarshal(r.body, &p); err != nil || len(p.Data) != 2 {
		t.Fatalf("page: %v %s", err, r.body)
	}
	for _, raw := range p.Data {
		var ev wireEvent
		_ = json.Unmarshal(raw, &ev)
		if ev.APIVersion != "2024-06-20" {
			t.Errorf("%s api_version %q, want the request's Stripe-Version", ev.ID, ev.APIVersion)
		}
		if !bytes.Equal(raw, s.BodyVersion(ev.ID, "2024-06-20")) {
			t.Errorf("%s bytes differ from BodyVersion", ev.ID)
		}
	}
	if s.Body("evt_nope") != nil {
		t.Error("Body of an unknown id is not nil")
	}
	wantError(t, get(t, s, "/v1/events/evt_nope"), 404, "invalid_request_error", "No such event: 'evt_nope'")
}

func TestEndingBefore(t *testing.T) {
	s := stripefake.New(t, key)
	all := idsOf(fill(s, 40), nil)
	at := 25 // cursor: all[25]; newer ones are all[:25]

	p := list(t, s, "limit=3&ending_before="+all[at])
	if got := ids(t, p); !slices.Equal(got, all[at-3:at]) || !p.HasMore {
		t.Fatalf("ending_before page = %v has_more %t, want %v true", got, p.HasMore, all[at-3:at])
	}
	// Page backwards to the newest: every newer event once.
	var got []string
	cursor := all[at]
	for {
		p := list(t, s, "limit=10&ending_before="+cursor)
		page := ids(t, p)
		if !slices.IsSortedFunc(page, func(a, b string) int { return slices.Index(all, a) - slices.Index(all, b) }) {
			t.Fatalf("page not newest first: %v", page)
		}
		got = append(page, got...)
		if !p.HasMore {
			break
		}
		cursor = page[0]
	}
	if !slices.Equal(got, all[:at]) {
		t.Fatalf("backward paging got %v, want %v", got, all[:at])
	}
	if p := list(t, s, "ending_before="+all[0]); len(p.Data) != 0 || p.HasMore {
		t.Fatalf("ending_before the newest: %v", ids(t, p))
	}
	// With a filter: the closest matching newer events.
	p = list(t, s, "limit=2&type=invoice.paid&ending_before="+all[at])
	var want []string
	for _, id := range all[:at] {
		if eventType(t, s, id) == "invoice.paid" {
			want = append(want, id)
		}
	}
	if got := ids(t, p); !slices.Equal(got, want[len(want)-2:]) || p.HasMore != (len(want) > 2) {
		t.Fatalf("filtered ending_before = %v %t, want %v", got, p.HasMore, want[len(want)-2:])
	}
	wantError(t, get(t, s, "/v1/events?ending_before=evt_x&starting_after="+all[0]), 400, "invalid_request_error", "only specify one")
}

func eventType(t *testing.T, s *stripefake.Server, id string) string {
	var ev wireEvent
	if err := json.Unmarshal(s.Body(id), &ev); err != nil {
		t.Fatal(err)
	}
	return ev.Type
}

func TestCursorNeedNotMatchFilter(t *testing.T) {
	s := stripefake.New(t, key)
	evs := fill(s, 30)
	all := idsOf(evs, nil)
	// A cursor of another type still positions the page.
	cur := evs[10]
	typ := "charge.succeeded"
	if cur.Type == typ {
		typ = "invoice.paid"
	}
	want := idsOf(evs[11:], func(e stripefake.Event) bool { return e.Type == typ })
	if got := listIDs(t, s, "limit=100&type="+typ+"&starting_after="+cur.ID); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v (all %v)", got, want, all)
	}
	e := wantError(t, get(t, s, "/v1/events?starting_after=evt_missing"), 400, "invalid_request_error", "No such event: 'evt_missing'")
	if e.Error.Param != "starting_after" || e.Error.Code != "" {
		t.Errorf("param %q code %q", e.Error.Param, e.Error.Code)
	}
}

func TestCreatedFilters(t *testing.T) {
	s := stripefake.New(t, key)
	evs := fill(s, 30) // created base+0 .. base+9 s, 3 each
	b := base.Unix()
	in := func(lo, hi int64) []string {
		return idsOf(evs, func(e stripefake.Event) bool { c := e.Created.Unix(); return c >= lo && c <= hi })
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{fmt.Sprintf("created[gte]=%d", b+7), in(b+7, b+9)},
		{fmt.Sprintf("created[gt]=%d", b+7), in(b+8, b+9)},
		{fmt.Sprintf("created[lte]=%d", b+1), in(b, b+1)},
		{fmt.Sprintf("created[lt]=%d", b+1), in(b, b)},
		{fmt.Sprintf("created[gte]=%d&created[lt]=%d", b+3, b+5), in(b+3, b+4)},
		{fmt.Sprintf("created=%d", b+4), in(b+4, b+4)},
		{fmt.Sprintf("created[gt]=%d", b+9), nil},
	} {
		if got := listIDs(t, s, "limit=100&"+tc.query); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.query, got, tc.want)
		}
	}
	wantError(t, get(t, s, "/v1/events?created[gte]=soon"), 400, "invalid_request_error", "Invalid integer: soon")
	wantError(t, get(t, s, "/v1/events?created[after]=1"), 400, "invalid_request_error", "Received unknown parameter: created[after]")
	wantError(t, get(t, s, fmt.Sprintf("/v1/events?created=%d&created[gte]=%d", b, b)), 400, "invalid_request_error", "not both")
}

func TestTypeFilters(t *testing.T) {
	s := stripefake.New(t, key)
	evs := fill(s, 40)
	s.Add(stripefake.Event{ID: "evt_ip", Type: "invoice_payment.paid", Created: base})
	evs = sorted(append(evs, stripefake.Event{ID: "evt_ip", Type: "invoice_payment.paid", Created: base}))
	of := func(types ...string) []string {
		return idsOf(evs, func(e stripefake.Event) bool { return slices.Contains(types, e.Type) })
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"types[0]=invoice.paid&types[1]=charge.succeeded", of("invoice.paid", "charge.succeeded")},
		{"types[]=invoice.paid&types[]=customer.created", of("invoice.paid", "customer.created")},
		{"types=customer.created", of("customer.created")},
		{"types[0]=invoice.*", nil}, // types are exact names
		{"type=invoice.paid", of("invoice.paid")},
		{"type=invoice.*", of("invoice.paid", "invoice.created")},
		{"type=*", idsOf(evs, nil)},
		{"type=invoice", nil},
	} {
		if got := listIDs(t, s, "limit=100&"+tc.query); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.query, got, tc.want)
		}
	}
	var many []string
	for i := range 21 {
		many = append(many, fmt.Sprintf("types[%d]=t%d", i, i))
	}
	wantError(t, get(t, s, "/v1/events?"+strings.Join(many, "&")), 400, "invalid_request_error", "at most 20")
	if r := get(t, s, "/v1/events?"+strings.Join(many[:20], "&")); r.status != 200 {
		t.Errorf("20 types: %d %s", r.status, r.body)
	}
	wantError(t, get(t, s, "/v1/events?type=a&types[0]=b"), 400, "invalid_request_error", "not both")
	wantError(t, get(t, s, "/v1/events?types[x]=b"), 400, "invalid_request_error", "Received unknown parameter: types[x]")
}

func TestDeliverySuccessFilter(t *testing.T) {
	s := stripefake.New(t, key)
	evs := fill(s, 50)
	failed := idsOf(evs, func(e stripefake.Event) bool { return !e.DeliverySuccess })
	ok := idsOf(evs, func(e stripefake.Event) bool { return e.DeliverySuccess })
	if got := listIDs(t, s, "limit=100&delivery_success=false"); !slices.Equal(got, failed) || len(failed) != 10 {
		t.Errorf("delivery_success=false: got %v, want %v", got, failed)
	}
	if got := listIDs(t, s, "limit=100&delivery_success=true"); !slices.Equal(got, ok) {
		t.Errorf("delivery_success=true: got %v, want %v", got, ok)
	}
	for _, raw := range list(t, s, "limit=100&delivery_success=false").Data {
		var ev wireEvent
		_ = json.Unmarshal(raw, &ev)
		if ev.PendingWebhooks != 1 {
			t.Errorf("%s pending_webhooks %d", ev.ID, ev.PendingWebhooks)
		}
	}
	wantError(t, get(t, s, "/v1/events?delivery_success=maybe"), 400, "invalid_request_error", "Invalid boolean: maybe")
}

func TestBadRequests(t *testing.T) {
	s := stripefake.New(t, key)
	fill(s, 5)
	for _, tc := range []struct{ query, msg, param string }{
		{"foo=1", "Received unknown parameter: foo", "foo"},
		{"limit=10&starting_afterr=evt_1", "Received unknown parameter: starting_afterr", "starting_afterr"},
		{"limit=0", "greater than or equal to 1", "limit"},
		{"limit=101", "less than or equal to 100", "limit"},
		{"limit=ten", "Invalid integer: ten", "limit"},
		{"expand[0]=data.object", "cannot be expanded", "expand"},
	} {
		e := wantError(t, get(t, s, "/v1/events?"+tc.query), 400, "invalid_request_error", tc.msg)
		if e.Error.Param != tc.param {
			t.Errorf("%s: param %q, want %q", tc.query, e.Error.Param, tc.param)
		}
	}
	if r := get(t, s, "/v1/events?limit=100&limit=1"); r.status != 200 {
		t.Errorf("limit 1..100: %d", r.status)
	}
	wantError(t, get(t, s, "/v1/events/evt_0000?foo=1"), 400, "invalid_request_error", "unknown parameter: foo")
	wantError(t, get(t, s, "/v1/customers"), 404, "invalid_request_error", "Unrecognized request URL (GET: /v1/customers)")
	wantError(t, do(t, s, http.MethodPost, key, "/v1/events"), 404, "invalid_request_error", "Unrecognized request URL (POST: /v1/events)")
	wantError(t, get(t, s, "/v2/core/events"), 404, "invalid_request_error", "Unrecognized request URL")
}

func TestAuth(t *testing.T) {
	s := stripefake.New(t, key)
	fill(s, 3)
	r := do(t, s, http.MethodGet, "", "/v1/events")
	wantError(t, r, 401, "invalid_request_error", "You did not provide an API key")
	r = do(t, s, http.MethodGet, "sk_test_wrongwrongwrong9876", "/v1/events")
	wantError(t, r, 401, "invalid_request_error", "Invalid API Key provided: sk_test_"+strings.Repeat("*", 15)+"9876")
	wantError(t, do(t, s, http.MethodGet, "sk_test_wrongwrongwrong9876", "/v2/core/events/evt_1"), 401, "invalid_request_error", "Invalid API Key")

	const rk = "rk_test_51RestrictedKeyWithoutEventsZz99"
	s.SetForbidden(rk)
	e := wantError(t, do(t, s, http.MethodGet, rk, "/v1/events"), 403, "invalid_request_error", "does not have the required permissions")
	for _, part := range []string{"'rk_test_", "Zz99'", "rak_event_read", stripefake.Account} {
		if !strings.Contains(e.Error.Message, part) || strings.Contains(e.Error.Message, "RestrictedKey") {
			t.Errorf("403 message %q lacks %q or shows the key", e.Error.Message, part)
		}
	}
	// Basic auth with the key as user works too.
	req, _ := http.NewRequest(http.MethodGet, s.URL()+"/v1/events", nil)
	req.SetBasicAuth(key, "")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("basic auth: %d", res.StatusCode)
	}

	reqs := s.Requests()
	if len(reqs) != 5 {
		t.Fatalf("%d requests recorded, want 5", len(reqs))
	}
	if a := reqs[1].Header.Get("Authorization"); a != "Bearer ****9876" {
		t.Errorf("recorded Authorization %q, want redacted", a)
	}
	if reqs[3].Status != 403 || reqs[0].Status != 401 || reqs[4].Status != 200 {
		t.Errorf("statuses %d %d %d", reqs[0].Status, reqs[3].Status, reqs[4].Status)
	}
}

func TestFailNext(t *testing.T) {
	s := stripefake.New(t, key)
	fill(s, 3)
	s.FailNext(2, 503, "true")
	for i := range 2 {
		// Before auth: even a keyless request gets the injected failure.
		r := do(t, s, http.MethodGet, []string{"", key}[i], "/v1/events")
		wantError(t, r, 503, "api_error", "")
		if h := r.header.Get("Stripe-Should-Retry"); h != "true" {
			t.Errorf("Stripe-Should-Retry %q", h)
		}
		if r.header.Get("Request-Id") == "" {
			t.Error("no Request-Id")
		}
	}
	if r := get(t, s, "/v1/events"); r.status != 200 {
		t.Fatalf("third request: %d", r.status)
	}

	s.FailNext(1, 429, "false")
	r := get(t, s, "/v2/core/events/evt_nope")
	if e := wantError(t, r, 429, "invalid_request_error", "rate limit"); e.Error.Code != "rate_limit" {
		t.Errorf("429 code %q", e.Error.Code)
	}
	if h := r.header.Get("Stripe-Should-Retry"); h != "false" {
		t.Errorf("Stripe-Should-Retry %q", h)
	}

	s.FailNext(1, 500, "")
	r = get(t, s, "/v1/events")
	wantError(t, r, 500, "api_error", "")
	if _, ok := r.header["Stripe-Should-Retry"]; ok {
		t.Error("Stripe-Should-Retry sent for shouldRetry \"\"")
	}
	s.FailNext(5, 500, "")
	s.FailNext(0, 0, "")
	if r := get(t, s, "/v1/events"); r.status != 200 {
		t.Fatalf("after FailNext(0): %d", r.status)
	}
	var statuses []int
	for _, rq := range s.Requests() {
		statuses = append(statuses, rq.Status)
	}
	if !slices.Equal(statuses, []int{503, 503, 200, 429, 500, 200}) {
		t.Errorf("statuses %v", statuses)
	}
}

func TestV2Fetch(t *testing.T) {
	s := stripefake.New(t, key)
	full := []byte(`{
  "id": "evt_thin1",
  "object": "v2.core.event",
  "type": "v1.billing.meter.no_meter_found",
  "created": "2025-06-15T12:00:00.123Z",
  "data": {"developer_message_summary": "Zoë"},
  "livemode": false
}`)
	s.AddThin("evt_thin1", "v1.billing.meter.no_meter_found", full)
	r := get(t, s, "/v2/core/events/evt_thin1")
	if r.status != 200 || !bytes.Equal(r.body, full) {
		t.Fatalf("v2 fetch: %d %s", r.status, r.body)
	}
	if !bytes.Equal(s.Body("evt_thin1"), full) {
		t.Error("Body of a thin event differs from what is served")
	}
	e := wantError(t, get(t, s, "/v2/core/events/evt_unknown"), 404, "not_found", "evt_unknown")
	if e.Error.Code != "not_found" {
		t.Errorf("code %q", e.Error.Code)
	}
}

func TestFailThin(t *testing.T) {
	s := stripefake.New(t, key)
	s.AddThin("evt_t", "v2.core.event_destination.ping", []byte(`{"id":"evt_t","object":"v2.core.event","type":"v2.core.event_destination.ping"}`))
	s.FailThin("evt_t", 2, 503)
	// An unauthenticated fetch does not use up a failure.
	wantError(t, do(t, s, http.MethodGet, "", "/v2/core/events/evt_t"), 401, "invalid_request_error", "")
	if r := get(t, s, "/v2/core/events/evt_other"); r.status != 404 {
		t.Errorf("other id: %d", r.status)
	}
	for range 2 {
		wantError(t, get(t, s, "/v2/core/events/evt_t"), 503, "api_error", "injected")
	}
	if r := get(t, s, "/v2/core/events/evt_t"); r.status != 200 {
		t.Fatalf("third fetch: %d %s", r.status, r.body)
	}
	if r := get(t, s, "/v1/events"); r.status != 200 || len(list(t, s, "").Data) != 0 {
		t.Fatalf("v1 list with only a thin event: %d %s", r.status, r.body)
	}
}

func TestThinEventListedNowhereInV1(t *testing.T) {
	s := stripefake.New(t, key)
	s.Add(stripefake.Event{ID: "evt_v1", Type: "invoice.paid", Created: base},
		stripefake.Event{ID: "evt_v2", Type: "v1.billing.meter.no_meter_found", Created: base.Add(time.Second), Object: stripefake.ObjectThin})
	if got := listIDs(t, s, "limit=100"); !slices.Equal(got, []string{"evt_v1"}) {
		t.Fatalf("v1 list %v", got)
	}
	wantError(t, get(t, s, "/v1/events/evt_v2"), 404, "invalid_request_error", "No such event")
	wantError(t, get(t, s, "/v1/events?starting_after=evt_v2"), 400, "invalid_request_error", "No such event")
	r := get(t, s, "/v2/core/events/evt_v2")
	want := `{"id":"evt_v2","object":"v2.core.event","context":null,"created":"2025-06-15T15:06:41.000Z","data":{},"livemode":false,"reason":null,"related_object":null,"type":"v1.billing.meter.no_meter_found"}`
	if r.status != 200 || string(r.body) != want || string(s.Body("evt_v2")) != want {
		t.Fatalf("synthesized thin event: %d\n got %s\nwant %s", r.status, r.body, want)
	}
}

func TestHold(t *testing.T) {
	s := stripefake.New(t, key)
	fill(s, 2)
	gate := make(chan struct{})
	s.Hold(gate)
	done := make(chan resp, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, s.URL()+"/v1/events", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- resp{status: -1}
			return
		}
		defer res.Body.Close()
		done <- resp{status: res.StatusCode}
	}()
	eventually.Require(t, 5*time.Second, "the request to arrive", func() bool { return len(s.Requests()) > 0 })
	select {
	case r := <-done:
		t.Fatalf("held request answered %d", r.status)
	case <-time.After(50 * time.Millisecond):
	}
	if st := s.Requests()[0].Status; st != 0 {
		t.Fatalf("held request status %d", st)
	}
	s.Hold(nil)
	close(gate)
	if r := <-done; r.status != 200 {
		t.Fatalf("released request: %d", r.status)
	}

	// A request still held when the test ends does not block cleanup.
	s.Hold(make(chan struct{}))
	go func() {
		req, _ := http.NewRequest(http.MethodGet, s.URL()+"/v1/events", nil)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
		}
	}()
	eventually.Require(t, 5*time.Second, "the second request to arrive", func() bool { return len(s.Requests()) >= 2 })
}

func TestAddWhileServing(t *testing.T) {
	s := stripefake.New(t, key)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range 200 {
			s.Add(stripefake.Event{ID: fmt.Sprintf("evt_c%03d", i), Type: "invoice.paid", Created: base.Add(time.Duration(i) * time.Second)})
		}
	}()
	go func() {
		defer wg.Done()
		for range 50 {
			r := get(t, s, "/v1/events?limit=100")
			if r.status != 200 {
				t.Errorf("list: %d", r.status)
				return
			}
			_ = s.Requests()
		}
	}()
	wg.Wait()
	p := list(t, s, "limit=100")
	if got := ids(t, p); len(got) != 100 || got[0] != "evt_c199" || !p.HasMore {
		t.Fatalf("after concurrent adds: %d events, first %v", len(got), got[:1])
	}
}

func TestQueryRecorded(t *testing.T) {
	s := stripefake.New(t, key)
	get(t, s, "/v1/events?limit=5&types[0]=a.b&created[gte]=7", "Stripe-Version", "2025-08-27.basil")
	rq := s.Requests()[0]
	if rq.Method != "GET" || rq.Path != "/v1/events" || rq.RawQuery != "limit=5&types[0]=a.b&created[gte]=7" ||
		rq.Query.Get("types[0]") != "a.b" || rq.Header.Get("Stripe-Version") != "2025-08-27.basil" {
		t.Fatalf("recorded %+v", rq)
	}
	if _, err := url.ParseQuery(rq.RawQuery); err != nil {
		t.Fatal(err)
	}
}
