package console_test

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/oncehook/oncehook/console"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/testenv"
)

// client does not follow redirects, so tests see them.
func client(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type page struct {
	code   int
	body   string
	header http.Header
}

func do(t *testing.T, c *http.Client, req *http.Request) page {
	t.Helper()
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return page{code: res.StatusCode, body: string(b), header: res.Header}
}

func get(t *testing.T, c *http.Client, u string) page {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, c, req)
}

func postForm(t *testing.T, c *http.Client, u string, form url.Values, header ...string) page {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, c, req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// signIn signs c in through the form and returns a CSRF token.
func signIn(t *testing.T, c *http.Client, base string) string {
	t.Helper()
	p := postForm(t, c, base+"/console/signin", url.Values{"token": {testToken}})
	if p.code != http.StatusSeeOther || p.header.Get("Location") != "/console/" {
		t.Fatalf("sign-in: %d %q", p.code, p.header.Get("Location"))
	}
	p = get(t, c, base+"/console/")
	m := csrfField.FindStringSubmatch(p.body)
	if p.code != 200 || m == nil {
		t.Fatalf("overview after sign-in: %d, csrf %v", p.code, m)
	}
	return m[1]
}

// TestSignInIsRequired: without the token every page sends to the sign-in
// page and every POST is refused; the token works as a Bearer header and
// through the form, whose cookie is HttpOnly and SameSite=Strict; a
// tampered cookie or one signed for another token does not.
func TestSignInIsRequired(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	base := f.console.URL
	anon := client(t)
	for _, path := range []string{"/console/", "/console/events", "/console/events/evt_x", "/console/dead"} {
		if p := get(t, anon, base+path); p.code != http.StatusSeeOther || p.header.Get("Location") != "/console/signin" {
			t.Errorf("GET %s signed out: %d %q", path, p.code, p.header.Get("Location"))
		}
	}
	for _, path := range []string{"/console/replay", "/console/dead/replay", "/console/signout"} {
		if p := postForm(t, anon, base+path, url.Values{"destination": {"billing"}, "id": {"evt_x"}}); p.code != http.StatusUnauthorized {
			t.Errorf("POST %s signed out: %d", path, p.code)
		}
	}
	if p := postForm(t, anon, base+"/console/signin", url.Values{"token": {testToken + "x"}}); p.code != http.StatusUnauthorized || len(anon.Jar.Cookies(mustURL(t, base+"/console/"))) != 0 {
		t.Errorf("wrong token: %d, cookies %v", p.code, anon.Jar.Cookies(mustURL(t, base+"/console/")))
	}

	bearer := func(token string) int {
		req, _ := http.NewRequest(http.MethodGet, base+"/console/events", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		return do(t, client(t), req).code
	}
	if got := bearer(testToken); got != 200 {
		t.Errorf("Bearer with the token: %d", got)
	}
	if got := bearer(testToken[:len(testToken)-1]); got != http.StatusUnauthorized {
		t.Errorf("Bearer with a wrong token: %d", got)
	}

	c := client(t)
	p := postForm(t, c, base+"/console/signin", url.Values{"token": {testToken}})
	cookie := p.header.Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/console/"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("session cookie %q lacks %s", cookie, want)
		}
	}
	if strings.Contains(cookie, testToken) {
		t.Errorf("the session cookie holds the token: %q", cookie)
	}
	if p := get(t, c, base+"/console/events"); p.code != 200 {
		t.Errorf("signed in: %d", p.code)
	}

	// Tampered: one character of the signature changed.
	value := strings.TrimPrefix(strings.Split(cookie, ";")[0], "oncehook_console=")
	tampered := value[:len(value)-1] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", value[len(value)-1])+1)%16])
	req, _ := http.NewRequest(http.MethodGet, base+"/console/events", nil)
	req.AddCookie(&http.Cookie{Name: "oncehook_console", Value: tampered})
	if got := do(t, client(t), req); got.code != http.StatusSeeOther {
		t.Errorf("tampered cookie: %d", got.code)
	}

	// The same cookie on a console with another token: signed out.
	other, err := console.New(console.Config{Token: testToken + "-rotated", Pool: f.in.Pool(), Metrics: metrics.New().Registry})
	if err != nil {
		t.Fatal(err)
	}
	rec := recorder(other, value, "/console/events")
	if rec != http.StatusSeeOther {
		t.Errorf("a session of the old token after rotation: %d", rec)
	}
}

// TestFailedSignInsDoNotThrottleSessions: failed sign-ins from one address
// (form and Bearer) soon get 429 for every further sign-in attempt from
// it, the right token included, while a browser already signed in from
// the same address (a NAT, a VPN, a proxy) is not throttled: its session
// is checked before the address's failures.
func TestFailedSignInsDoNotThrottleSessions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	base := f.console.URL
	signedIn := client(t)
	token := signIn(t, signedIn, base)

	bearer := func(tok string) int {
		req, _ := http.NewRequest(http.MethodGet, base+"/console/events", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		return do(t, client(t), req).code
	}
	guesser := client(t)
	codes := map[int]int{}
	for i := range 30 { // the throttle allows 10, then one a second
		if i%2 == 0 {
			codes[bearer(fmt.Sprintf("guess-%02d-0123456789abcdef", i))]++
		} else {
			codes[postForm(t, guesser, base+"/console/signin", url.Values{"token": {fmt.Sprintf("guess-%02d", i)}}).code]++
		}
	}
	if codes[http.StatusTooManyRequests] == 0 || codes[http.StatusUnauthorized] == 0 {
		t.Fatalf("30 failed sign-ins from one address: %v, want 401s, then 429s", codes)
	}
	// Further sign-in attempts from the address are throttled, the right
	// token too: it is not even checked.
	if p := postForm(t, client(t), base+"/console/signin", url.Values{"token": {testToken}}); p.code != http.StatusTooManyRequests ||
		p.header.Get("Retry-After") == "" {
		t.Errorf("the sign-in form from the throttled address: %d (Retry-After %q), want 429", p.code, p.header.Get("Retry-After"))
	}
	if got := bearer(testToken); got != http.StatusTooManyRequests {
		t.Errorf("a Bearer sign-in from the throttled address: %d, want 429", got)
	}
	// The session signed in before the failures still answers, and posts.
	for _, path := range []string{"/console/", "/console/events", "/console/dead"} {
		if p := get(t, signedIn, base+path); p.code != 200 {
			t.Errorf("GET %s with a valid session from the throttled address: %d, want 200", path, p.code)
		}
	}
	if p := postForm(t, signedIn, base+"/console/signout", url.Values{"csrf": {token}}); p.code != http.StatusSeeOther {
		t.Errorf("sign out with a valid session from the throttled address: %d, want 303", p.code)
	}
	// Without credentials: sent to the sign-in page, not throttled.
	if p := get(t, client(t), base+"/console/events"); p.code != http.StatusSeeOther {
		t.Errorf("GET signed out from the throttled address: %d, want 303 to the sign-in page", p.code)
	}
}

// TestStateChangesNeedPOSTAndCSRF: a replay is refused without the
// session's CSRF token, with another session's, from another origin, or
// as a GET; with it, it replays.
func TestStateChangesNeedPOSTAndCSRF(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	base := f.console.URL
	f.post(t, harness.EventBody("evt_csrf_1", "invoice.paid"))
	f.waitStatus(t, "evt_csrf_1", "billing", "dead")
	f.billing.failing.Store(false)

	c, other := client(t), client(t)
	token := signIn(t, c, base)
	otherToken := signIn(t, other, base)
	if token == otherToken {
		t.Fatal("two sessions share a CSRF token")
	}
	form := func(csrf string) url.Values {
		return url.Values{"csrf": {csrf}, "destination": {"billing"}, "id": {"evt_csrf_1"}, "from": {"dead"}}
	}
	for name, p := range map[string]page{
		"no token":      postForm(t, c, base+"/console/replay", form("")),
		"other session": postForm(t, c, base+"/console/replay", form(otherToken)),
		"cross origin":  postForm(t, c, base+"/console/replay", form(token), "Origin", "http://evil.example"),
	} {
		if p.code != http.StatusForbidden {
			t.Errorf("%s: %d", name, p.code)
		}
	}
	if p := get(t, c, base+"/console/replay?"+form(token).Encode()); p.code != http.StatusNotFound {
		t.Errorf("GET replay: %d", p.code)
	}
	var status string
	_ = f.in.Pool().QueryRow(t.Context(), `SELECT status FROM stripe_webhook_deliveries WHERE event_id = 'evt_csrf_1' AND destination = 'billing'`).Scan(&status)
	if status != "dead" {
		t.Fatalf("a refused replay changed the delivery: %s", status)
	}
	if p := postForm(t, c, base+"/console/replay", form(token)); p.code != http.StatusSeeOther {
		t.Fatalf("replay with the token: %d %s", p.code, p.body)
	}
	f.waitStatus(t, "evt_csrf_1", "billing", "delivered")
}

// TestHostilePayloadsAreEscaped: markup in a payload, an event type and a
// sink's answer is shown as text on every page, never as markup, and the
// pages carry a policy that forbids inline script.
func TestHostilePayloadsAreEscaped(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	base := f.console.URL
	f.post(t, hostileBody("evt_hostile_1", "invoice.created"))
	f.waitStatus(t, "evt_hostile_1", "billing", "dead")
	c := client(t)
	signIn(t, c, base)
	pages := []string{
		"/console/", "/console/events", "/console/events?type=" + url.QueryEscape(hostileImg),
		"/console/events/evt_hostile_1", "/console/dead?destination=billing",
		"/console/events/" + url.PathEscape(hostileScript), "/console/events?id=" + url.QueryEscape(hostileImg),
		"/console/events?since=" + url.QueryEscape(hostileScript),
	}
	inline := regexp.MustCompile(`(?i)<script(\s[^>]*)?>`)
	handlerAttr := regexp.MustCompile(`(?i)<[a-z][^>]*\son[a-z]+\s*=`)
	quotedValue := regexp.MustCompile(`="[^"]*"`)
	for _, path := range pages {
		p := get(t, c, base+path)
		for _, raw := range []string{hostileScript, hostileImg, hostileSink, "<img"} {
			if strings.Contains(p.body, raw) {
				t.Errorf("%s shows %q unescaped", path, raw)
			}
		}
		// Attribute values are quoted and escaped: drop them, then look
		// for a handler attribute in what is left of each tag.
		if tag := handlerAttr.FindString(quotedValue.ReplaceAllString(p.body, `=""`)); tag != "" {
			t.Errorf("%s has an event handler attribute: %s", path, tag)
		}
		for _, tag := range inline.FindAllString(p.body, -1) {
			if !strings.Contains(tag, `src="/console/static/`) {
				t.Errorf("%s has an inline or foreign script: %s", path, tag)
			}
		}
		csp := p.header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("%s: Content-Security-Policy %q", path, csp)
		}
		if p.header.Get("X-Content-Type-Options") != "nosniff" || p.header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", path, p.header)
		}
	}
	detail := get(t, c, base+"/console/events/evt_hostile_1").body
	for _, escaped := range []string{"&lt;script&gt;alert(", "&lt;img src=x onerror=alert(&#34;xss-sink&#34;)&gt;"} {
		if !strings.Contains(detail, escaped) {
			t.Errorf("the event page does not show %q as text", escaped)
		}
	}
}

// TestReplayByFilterConfirmsTheCount: replaying every dead letter that
// matches a filter first shows how many, and replays only when confirmed.
func TestReplayByFilterConfirmsTheCount(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	base := f.console.URL
	for i := range 5 {
		f.post(t, harness.EventBody("evt_bulk_"+string(rune('a'+i)), "invoice.paid"))
	}
	f.post(t, harness.EventBody("evt_bulk_other", "invoice.voided"))
	for i := range 5 {
		f.waitStatus(t, "evt_bulk_"+string(rune('a'+i)), "billing", "dead")
	}
	f.waitStatus(t, "evt_bulk_other", "billing", "dead")
	f.billing.failing.Store(false)
	c := client(t)
	csrf := signIn(t, c, base)
	ask := url.Values{"csrf": {csrf}, "destination": {"billing"}, "type": {"invoice.paid"}}
	p := postForm(t, c, base+"/console/dead/replay", ask)
	if p.code != 200 || !strings.Contains(p.body, `class="replay-count">5<`) {
		t.Fatalf("confirmation: %d %s", p.code, p.body)
	}
	var dead int
	_ = f.in.Pool().QueryRow(t.Context(), `SELECT count(*) FROM stripe_webhook_deliveries WHERE status = 'dead'`).Scan(&dead)
	if dead != 6 {
		t.Fatalf("asking replayed something: %d dead, want 6", dead)
	}
	ask.Set("confirm", "5")
	if p := postForm(t, c, base+"/console/dead/replay", ask); p.code != http.StatusSeeOther || !strings.Contains(p.header.Get("Location"), "replayed=5") {
		t.Fatalf("confirmed: %d %q", p.code, p.header.Get("Location"))
	}
	for i := range 5 {
		f.waitStatus(t, "evt_bulk_"+string(rune('a'+i)), "billing", "delivered")
	}
	f.waitStatus(t, "evt_bulk_other", "billing", "dead")
}

// TestConfigRefusesAShortToken: the token is the console's only key.
func TestConfigRefusesAShortToken(t *testing.T) {
	t.Parallel()
	_, err := console.New(console.Config{Token: "short", Pool: testenv.Postgres(t), Metrics: metrics.New().Registry})
	if err == nil || !strings.Contains(err.Error(), "ADMIN_TOKEN") {
		t.Fatalf("short token: %v", err)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// recorder serves path to h with the session cookie value and returns
// the status code.
func recorder(h http.Handler, cookie, path string) int {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.AddCookie(&http.Cookie{Name: "oncehook_console", Value: cookie})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Code
}

var (
	olderLink = regexp.MustCompile(`<a rel="next" href="([^"]+)">`)
	eventLink = regexp.MustCompile(`href="/console/events/(evt_[^"]+)"`)
)

// TestPagerWalksEveryEvent follows "Older" from the first page of a
// filtered list to the last: every matching event is listed once, and the
// filter holds on every page.
func TestPagerWalksEveryEvent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const n = 120
	for i := range n {
		f.post(t, harness.EventBody(fmt.Sprintf("evt_pager_%03d", i), "customer.created"))
		f.post(t, harness.EventBody(fmt.Sprintf("evt_other_%03d", i), "charge.succeeded"))
	}
	c := client(t)
	signIn(t, c, f.console.URL)
	seen := map[string]bool{}
	next := "/console/events?type=customer."
	for pages := 0; next != ""; pages++ {
		if pages > n {
			t.Fatal("the pager does not end")
		}
		p := get(t, c, f.console.URL+next)
		if p.code != 200 {
			t.Fatalf("%s: %d", next, p.code)
		}
		for _, m := range eventLink.FindAllStringSubmatch(p.body, -1) {
			if !strings.HasPrefix(m[1], "evt_pager_") {
				t.Fatalf("%s lists %s, which the filter excludes", next, m[1])
			}
			if seen[m[1]] {
				t.Fatalf("%s lists %s again", next, m[1])
			}
			seen[m[1]] = true
		}
		next = ""
		if m := olderLink.FindStringSubmatch(p.body); m != nil {
			next = html.UnescapeString(m[1])
		}
	}
	if len(seen) != n {
		t.Fatalf("the pages listed %d of the %d events", len(seen), n)
	}
}
