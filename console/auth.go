package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cookieName is the session cookie.
const cookieName = "oncehook_console"

// session is a signed-in browser. Its cookie is "expiry.nonce.mac", signed
// with a key derived from the token: it holds no secret, survives a
// restart, works on every instance with the same token, and a new token
// signs everyone out.
type session struct {
	nonce string
	// bearer marks a request signed in by its Authorization header; it
	// needs no CSRF token, as a browser never adds that header by itself.
	bearer bool
}

// auth signs sessions and checks tokens.
type auth struct {
	tokenSum [sha256.Size]byte
	key      []byte
	ttl      time.Duration
	now      func() time.Time
	throttle throttle
}

func newAuth(token string, ttl time.Duration) *auth {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("oncehook console session key v1"))
	return &auth{
		tokenSum: sha256.Sum256([]byte(token)),
		key:      m.Sum(nil),
		ttl:      ttl,
		now:      time.Now,
		throttle: throttle{perSecond: 1, burst: 10},
	}
}

// tokenOK compares in constant time: hashing first makes the comparison
// independent of the given token's length too.
func (a *auth) tokenOK(token string) bool {
	sum := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(sum[:], a.tokenSum[:]) == 1
}

func (a *auth) mac(parts ...string) string {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(m.Sum(nil))
}

// newCookie starts a session.
func (a *auth) newCookie(r *http.Request) *http.Cookie {
	var b [16]byte
	_, _ = rand.Read(b[:])
	nonce := hex.EncodeToString(b[:])
	exp := a.now().Add(a.ttl)
	expiry := strconv.FormatInt(exp.Unix(), 10)
	return a.cookie(r, expiry+"."+nonce+"."+a.mac("session", expiry, nonce), exp)
}

func (a *auth) cookie(r *http.Request, value string, exp time.Time) *http.Cookie {
	return &http.Cookie{
		Name: cookieName, Value: value, Path: "/console/", Expires: exp, MaxAge: int(time.Until(exp).Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https",
	}
}

// clearCookie ends a session in the browser.
func (a *auth) clearCookie(r *http.Request) *http.Cookie {
	c := a.cookie(r, "", time.Unix(0, 0))
	c.MaxAge = -1
	return c
}

// session returns the request's session: a valid Bearer token or a valid,
// unexpired session cookie.
func (a *auth) session(r *http.Request) (session, bool) {
	// Only a Bearer header is token auth: another scheme (an
	// authenticating proxy's Basic, say) falls through to the cookie.
	if token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return session{bearer: true}, a.tokenOK(token)
	}
	c, err := r.Cookie(cookieName)
	if err != nil {
		return session{}, false
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 3 {
		return session{}, false
	}
	expiry, nonce, mac := parts[0], parts[1], parts[2]
	if !hmac.Equal([]byte(mac), []byte(a.mac("session", expiry, nonce))) {
		return session{}, false
	}
	exp, err := strconv.ParseInt(expiry, 10, 64)
	if err != nil || a.now().Unix() >= exp {
		return session{}, false
	}
	return session{nonce: nonce}, true
}

// csrfToken is the token a session's forms carry.
func (a *auth) csrfToken(s session) string {
	if s.bearer {
		return ""
	}
	return a.mac("csrf", s.nonce)
}

// postOK checks a state-changing request: a POST, from this origin when
// the browser says where it comes from, with the session's CSRF token.
func (a *auth) postOK(r *http.Request, s session) bool {
	if r.Method != http.MethodPost || !sameOrigin(r) {
		return false
	}
	if s.bearer {
		return true
	}
	return hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(a.csrfToken(s)))
}

// sameOrigin is false when the Origin header names another host than the
// request's, or than the one a proxy forwarded it for.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return false
	}
	return u.Host == r.Host || u.Host == r.Header.Get("X-Forwarded-Host")
}

// throttle bounds failed sign-ins (form or Bearer) per client address, a
// token bucket each, so a guessing client costs little, fills no log, and
// cannot lock others out. The map is bounded: when full it starts afresh.
type throttle struct {
	mu        sync.Mutex
	perSecond float64
	burst     float64
	buckets   map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxThrottled bounds the addresses the throttle remembers.
const maxThrottled = 4096

// allow reports whether addr may try a token now (it has had fewer than
// burst failures lately).
func (t *throttle) allow(addr string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.refill(addr, now)
	return b == nil || b.tokens >= 1
}

// fail takes one token from addr's bucket.
func (t *throttle) fail(addr string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.refill(addr, now)
	if b == nil {
		if len(t.buckets) >= maxThrottled || t.buckets == nil {
			t.buckets = make(map[string]*bucket)
		}
		b = &bucket{tokens: t.burst, last: now}
		t.buckets[addr] = b
	}
	b.tokens = max(0, b.tokens-1)
}

func (t *throttle) refill(addr string, now time.Time) *bucket {
	b := t.buckets[addr]
	if b == nil {
		return nil
	}
	b.tokens = min(t.burst, b.tokens+now.Sub(b.last).Seconds()*t.perSecond)
	b.last = now
	if b.tokens >= t.burst {
		delete(t.buckets, addr)
		return nil
	}
	return b
}

// clientAddr is the request's address without its port.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
