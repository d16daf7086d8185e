package sink_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/sinktest"
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
