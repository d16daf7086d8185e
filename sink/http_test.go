package sink_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/sinktest"
	"github.com/oncehook/oncehook/internal/testenv"
)

// TestHTTPSinkCountsOnlyA2xx: every other answer, or none, is a failed
// attempt, so the event is retried rather than lost.
func TestHTTPSinkCountsOnlyA2xx(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/400", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "bad", http.StatusBadRequest) })
	mux.HandleFunc("/503", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "busy", http.StatusServiceUnavailable) })
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server notices the client leave
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	mux.HandleFunc("/garbage", func(w http.ResponseWriter, r *http.Request) {
		conn, _, _ := w.(http.Hijacker).Hijack()
		_, _ = conn.Write([]byte("NOT HTTP AT ALL\r\n\r\n"))
		_ = conn.Close()
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a port nobody answers on
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/x"
	ln.Close()

	for path, wantOK := range map[string]bool{
		srv.URL + "/ok": true, srv.URL + "/redirect": false, srv.URL + "/400": false, srv.URL + "/503": false,
		srv.URL + "/hang": false, srv.URL + "/garbage": false, closed: false,
	} {
		s := openSink(t, path, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err := s.Deliver(ctx, sinktest.Event("evt_http"))
		cancel()
		_ = s.Close()
		if (err == nil) != wantOK {
			t.Errorf("%s: Deliver error %v, want ok=%v", path, err, wantOK)
		}
	}
}

// TestHTTPSinkErrorsRedactURL: a SINK_URL's query values and password
// are credentials; a failed delivery's error, which is logged and stored
// as last_error, must not carry them.
func TestHTTPSinkErrorsRedactURL(t *testing.T) {
	t.Parallel()
	const token, password = "SECRETVALUE", "PASSWORDVALUE"
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(hang.Close) // after the parallel subtests
	closedAddr := testenv.FreeAddr(t)

	for name, tc := range map[string]struct {
		url     string
		timeout bool
	}{
		"closed port":            {url: "http://" + closedAddr + "/hook?token=" + token},
		"closed port, userinfo":  {url: "http://user:" + password + "@" + closedAddr + "/hook?a=1&token=" + token},
		"hanging server":         {url: hang.URL + "/hook?token=" + token, timeout: true},
		"hanging server, escape": {url: hang.URL + "/hook?token=" + token + "%21&x=" + password, timeout: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := openSink(t, tc.url, nil)
			defer s.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			err := s.Deliver(ctx, sinktest.Event("evt_redact"))
			if err == nil {
				t.Fatal("Deliver: no error")
			}
			msg := err.Error()
			for _, secret := range []string{token, password} {
				if strings.Contains(msg, secret) {
					t.Errorf("error names the secret %s: %s", secret, msg)
				}
			}
			if !strings.Contains(msg, "evt_redact") || !strings.Contains(msg, "token=") {
				t.Errorf("error lost its detail: %s", msg)
			}
			if tc.timeout && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false", err)
			}
			var ue *url.Error
			if !errors.As(err, &ue) || strings.Contains(ue.URL, token) {
				t.Errorf("errors.As *url.Error: %v", ue)
			}
		})
	}
}
