package service

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/oncehook/oncehook/internal/metrics"
)

// TestAdminIndex: / on ADMIN_ADDR links to /metrics, and to the console
// when it is on (else it says how to turn it on); other unknown paths and
// other methods on / are not answered with it.
func TestAdminIndex(t *testing.T) {
	t.Parallel()
	cons := fakeConsole{http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("console")) })}
	for _, c := range []struct {
		name     string
		console  guarded
		want     []string
		wantNone string
	}{
		{"console on", cons, []string{`<a href="/console/">`, `<a href="/metrics">`}, "ADMIN_TOKEN"},
		{"console off", nil, []string{`<a href="/metrics">`, "set ADMIN_TOKEN"}, `<a href="/console/">`},
	} {
		t.Run(c.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			a := newAdmin(ln, metrics.New(), nil, c.console, nil)
			serve := func(method, path string) *httptest.ResponseRecorder {
				rec := httptest.NewRecorder()
				a.srv.Handler.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
				return rec
			}
			rec := serve(http.MethodGet, "/")
			body := rec.Body.String()
			if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
				t.Fatalf("GET /: %d %q", rec.Code, rec.Header().Get("Content-Type"))
			}
			for _, w := range c.want {
				if !strings.Contains(body, w) {
					t.Errorf("GET / lacks %q:\n%s", w, body)
				}
			}
			if strings.Contains(body, c.wantNone) {
				t.Errorf("GET / has %q:\n%s", c.wantNone, body)
			}
			if rec := serve(http.MethodGet, "/metrics"); rec.Code != 200 || !strings.Contains(rec.Body.String(), "oncehook_") {
				t.Errorf("GET /metrics: %d", rec.Code)
			}
			for _, path := range []string{"/nope", "/index.html", "/metrics/x"} {
				if rec := serve(http.MethodGet, path); rec.Code != http.StatusNotFound {
					t.Errorf("GET %s: %d, want 404", path, rec.Code)
				}
			}
			if rec := serve(http.MethodPost, "/"); rec.Code == 200 {
				t.Errorf("POST /: %d, want it refused", rec.Code)
			}
		})
	}
}

// fakeConsole serves h, and lets every request through Protect.
type fakeConsole struct{ http.Handler }

func (fakeConsole) Protect(h http.Handler) http.Handler { return h }
