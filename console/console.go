package console

import (
	"bytes"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/oncehook/oncehook/admin"
	"github.com/oncehook/oncehook/internal/ratelog"
	"github.com/oncehook/oncehook/store"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// contentSecurityPolicy allows the console's own files and nothing else:
// no inline script or style, no other origin, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// maxFormBytes bounds a POST body: a selection of replays is its largest.
const maxFormBytes = 1 << 20

// Console is the console's HTTP handler, mounted at /console/.
type Console struct {
	cfg Config
	// admin is the operator API, as the command line uses it.
	admin  *admin.Admin
	auth   *auth
	pages  map[string]*template.Template
	mux    *http.ServeMux
	intake *rates
	// failed logs failed sign-ins, at most one line per ratelog.Interval.
	failed *ratelog.Logger
	// busy holds a slot per console request being served.
	busy chan struct{}
}

// busyLimit bounds the console requests served at once (each may hold a
// Postgres connection); busyWait is how long one waits for a slot.
const (
	busyLimit = 2
	busyWait  = 5 * time.Second
)

// New returns the console, or an error naming what is wrong with cfg.
func New(cfg Config) (*Console, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, admin: admin.New(store.New(cfg.Pool)), auth: newAuth(cfg.Token, cfg.SessionTTL), intake: &rates{}, failed: &ratelog.Logger{Log: cfg.Log},
		busy: make(chan struct{}, busyLimit)}
	if err := c.parseTemplates(); err != nil {
		return nil, err
	}
	static, _ := fs.Sub(staticFiles, "static")
	mux := http.NewServeMux()
	mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /console/signin", c.signInForm)
	mux.HandleFunc("POST /console/signin", c.signIn)
	mux.HandleFunc("POST /console/signout", c.signedIn(c.signOut))
	mux.HandleFunc("GET /console/{$}", c.signedIn(c.overview))
	mux.HandleFunc("GET /console/events", c.signedIn(c.events))
	mux.HandleFunc("GET /console/events/{id}", c.signedIn(c.event))
	mux.HandleFunc("GET /console/dead", c.signedIn(c.deadLetters))
	mux.HandleFunc("POST /console/replay", c.signedIn(c.replay))
	mux.HandleFunc("POST /console/dead/replay", c.signedIn(c.replayMatching))
	mux.HandleFunc("/console/", c.signedIn(func(w http.ResponseWriter, r *http.Request, s session) {
		c.fail(w, r, s, http.StatusNotFound, "No such page.")
	}))
	c.mux = mux
	return c, nil
}

func (c *Console) parseTemplates() error {
	funcs := template.FuncMap{
		"ts":         timestamp,
		"age":        age,
		"pathEscape": url.PathEscape,
		"deliveryTo": deliveryTo,
		"clip":       func(s string) string { return truncate(s, maxErrorShown) },
		// atCap: a count that stopped at admin.CountCap is "at least".
		"atCap": func(n int64) bool { return n >= admin.CountCap },
	}
	c.pages = map[string]*template.Template{}
	for _, name := range []string{"signin", "overview", "events", "event", "dead", "confirm", "error"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/eventtable.html", "templates/"+name+".html")
		if err != nil {
			return err
		}
		c.pages[name] = t
	}
	return nil
}

// timestamp prints a time.Time or a *time.Time in UTC, to the second.
func timestamp(v any) string {
	switch t := v.(type) {
	case time.Time:
		return t.UTC().Format("2006-01-02 15:04:05")
	case *time.Time:
		if t != nil {
			return t.UTC().Format("2006-01-02 15:04:05")
		}
	}
	return ""
}

// ServeHTTP serves every console page with the security headers.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin") // so that forms carry an Origin header, not "null"
	h.Set("Cache-Control", "no-store")
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				http.Error(w, "form too large", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "malformed form", http.StatusBadRequest)
			return
		}
	}
	c.mux.ServeHTTP(w, r)
}

// signedIn runs h for a signed-in request and sends the others to the
// sign-in page (or answers 401 to a script or a POST, 429 to a Bearer
// from an address throttled for failed sign-ins).
func (c *Console) signedIn(h func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, code := c.authenticate(r)
		switch code {
		case http.StatusTooManyRequests:
			tooMany(w)
			return
		case http.StatusUnauthorized:
			if r.Method == http.MethodGet && r.Header.Get("Authorization") == "" {
				http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
				return
			}
			unauthorized(w)
			return
		}
		if r.Method == http.MethodPost && !c.auth.postOK(r, s) {
			c.fail(w, r, s, http.StatusForbidden, "This form has expired or did not come from the console. Reload the page and try again.")
			return
		}
		// The console shares the intake's Postgres pool: it holds at most
		// busyLimit connections, whatever the open tabs.
		select {
		case c.busy <- struct{}{}:
			defer func() { <-c.busy }()
		case <-time.After(busyWait):
			w.Header().Set("Retry-After", "2")
			c.fail(w, r, s, http.StatusServiceUnavailable, "The console is busy with other requests; try again in a moment.")
			return
		case <-r.Context().Done():
			return
		}
		h(w, r, s)
	}
}

// authenticate returns the request's session, or the status that refuses
// it. A valid session cookie is checked first and never throttled: a
// guesser behind the same address (a NAT, a VPN, a proxy) cannot lock
// signed-in browsers out. A Bearer header is a sign-in attempt: from an
// address with too many failures lately it is not even checked (429),
// and a wrong one counts against the address (401). No credentials, or a
// cookie that is not valid, is 401 and costs the address nothing: such a
// request tries no token.
func (c *Console) authenticate(r *http.Request) (session, int) {
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		if s, ok := c.auth.session(r); ok {
			return s, http.StatusOK
		}
		return session{}, http.StatusUnauthorized
	}
	addr := clientAddr(r)
	if !c.auth.throttle.allow(addr, time.Now()) {
		return session{}, http.StatusTooManyRequests
	}
	s, ok := c.auth.session(r)
	if !ok {
		c.auth.throttle.fail(addr, time.Now())
		c.failed.Warn("console: failed Bearer sign-in", "remote", addr)
		return session{}, http.StatusUnauthorized
	}
	return s, http.StatusOK
}

// tooMany answers a request from an address throttled for failed sign-ins.
func tooMany(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	http.Error(w, "too many failed sign-ins from this address; wait a few seconds", http.StatusTooManyRequests)
}

// unauthorized answers a request without a valid token or session.
func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="oncehook console"`)
	http.Error(w, "sign in with the admin token", http.StatusUnauthorized)
}

// Protect serves h, another page of the admin listener (pprof, the
// detailed /readyz), only to a request signed in as the console's pages
// are: the token as a Bearer header (or a console session cookie, which
// browsers send under /console/ only), with the same per-address
// throttle of failed sign-ins. Others get 401, or 429 when throttled.
func (c *Console) Protect(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch _, code := c.authenticate(r); code {
		case http.StatusTooManyRequests:
			tooMany(w)
		case http.StatusUnauthorized:
			unauthorized(w)
		default:
			h.ServeHTTP(w, r)
		}
	})
}

// view is what every page template gets.
type view struct {
	Title    string
	CSRF     string
	SignedIn bool
	Nav      string
	Data     any
}

// render writes page name with data; it renders into a buffer first, so
// a template error never sends half a page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, s session, code int, name, title string, data any) {
	var buf bytes.Buffer
	v := view{Title: title, CSRF: c.auth.csrfToken(s), SignedIn: s.bearer || s.nonce != "", Nav: name, Data: data}
	if err := c.pages[name].Execute(&buf, v); err != nil {
		c.cfg.Log.Error("console: rendering a page", "page", name, "error", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// fail renders an error page with msg.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s session, code int, msg string) {
	c.render(w, r, s, code, "error", http.StatusText(code), msg)
}

// failErr reports a failed database read or write without its details,
// which go to the log.
func (c *Console) failErr(w http.ResponseWriter, r *http.Request, s session, what string, err error) {
	c.cfg.Log.Error("console: "+what, "error", err)
	code := http.StatusInternalServerError
	msg := "Could not " + what + ": the database did not answer. The log has the details."
	if r.Context().Err() != nil {
		code = http.StatusServiceUnavailable
	}
	c.fail(w, r, s, code, msg)
}

func (c *Console) signInForm(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, session{}, http.StatusOK, "signin", "Sign in", "")
}

func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		c.render(w, r, session{}, http.StatusForbidden, "signin", "Sign in", "This form did not come from the console.")
		return
	}
	addr := clientAddr(r)
	if !c.auth.throttle.allow(addr, time.Now()) {
		w.Header().Set("Retry-After", "1")
		c.render(w, r, session{}, http.StatusTooManyRequests, "signin", "Sign in", "Too many failed sign-ins from this address. Wait a few seconds and try again.")
		return
	}
	if !c.auth.tokenOK(r.PostFormValue("token")) {
		c.auth.throttle.fail(addr, time.Now())
		c.failed.Warn("console: failed sign-in", "remote", addr)
		c.render(w, r, session{}, http.StatusUnauthorized, "signin", "Sign in", "That is not the admin token.")
		return
	}
	http.SetCookie(w, c.auth.newCookie(r))
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

func (c *Console) signOut(w http.ResponseWriter, r *http.Request, _ session) {
	http.SetCookie(w, c.auth.clearCookie(r))
	http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
}
