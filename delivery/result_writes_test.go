package delivery_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/sink"
	"github.com/oncehook/oncehook/store"
)

// rawSink is an HTTP server that writes its answers byte for byte, so it
// can send what net/http's server never would: a Latin-1 reason phrase.
type rawSink struct {
	URL    string
	mu     sync.Mutex
	counts map[string]int
}

func startRawSink(t *testing.T, answer func(id string) string) *rawSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &rawSink{URL: "http://" + ln.Addr().String() + "/hook", counts: map[string]int{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = br.Discard(int(req.ContentLength))
					id := req.Header.Get("Idempotency-Key")
					s.mu.Lock()
					s.counts[id]++
					s.mu.Unlock()
					if _, err := c.Write([]byte(answer(id))); err != nil {
						return
					}
				}
			}()
		}
	}()
	return s
}

func (s *rawSink) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[id]
}

// TestHostileSinkAnswersCannotWedgeResultWrites: a sink that answers one
// event with a Latin-1 reason phrase and another with a reason longer than
// the stored limit, made of multi-byte characters, must not hold up the
// results of the events beside them. Every good event is delivered once and
// marked delivered; the bad ones back off, keep their (cleaned) errors and
// end dead.
func TestHostileSinkAnswersCannotWedgeResultWrites(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	evs := stored(t, pool, 30)
	latin1, long := evs[3].ID, evs[17].ID
	srv := startRawSink(t, func(id string) string {
		switch id {
		case latin1:
			return "HTTP/1.1 500 Erreur interne du serveur \xe9\r\nContent-Length: 0\r\n\r\n"
		case long:
			return "HTTP/1.1 500 " + strings.Repeat("é", 700) + "\r\nContent-Length: 0\r\n\r\n"
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
	})
	cfg := fastRetries
	cfg.Pool, cfg.Sink, cfg.MaxAttempts, cfg.Workers = pool, sink.NewHTTP(srv.URL, nil), 3, 4
	dispatchAll(t, cfg, evs)
	for _, ev := range evs {
		if ev.ID == latin1 || ev.ID == long {
			continue
		}
		r := waitRow(t, pool, ev.ID, func(r row) bool { return r.status == "delivered" })
		if r.attempts != 1 || srv.count(ev.ID) != 1 {
			t.Errorf("%s: %+v, delivered %d times; want once", ev.ID, r, srv.count(ev.ID))
		}
	}
	for _, id := range []string{latin1, long} {
		r := waitRow(t, pool, id, func(r row) bool { return r.status == "dead" })
		if r.attempts != 3 || !utf8.ValidString(r.lastError) || len(r.lastError) > 1000 || !strings.Contains(r.lastError, "500") {
			t.Errorf("%s: %+v, want dead after 3 attempts with a valid, bounded error", id, r)
		}
		shown, err := store.New(pool).ShowEvent(context.Background(), id)
		if err != nil || len(shown.History) != 3 {
			t.Errorf("%s: history %+v, %v; want 3 attempts", id, shown.History, err)
		}
	}
	if r := readRow(t, pool, latin1); !strings.Contains(r.lastError, "Erreur interne du serveur \uFFFD") {
		t.Errorf("the Latin-1 reason phrase is stored as %q, want it with U+FFFD in place of the bad byte", r.lastError)
	}
}

// TestBackoffIsBoundedForAnyAttemptCount: a row with far more attempts
// than today's limit (MaxAttempts lowered, or an old row) still gets its
// failure written; 2^attempts must not overflow.
func TestBackoffIsBoundedForAnyAttemptCount(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	evs := stored(t, pool, 2)
	setAttempts(t, pool, evs[0].ID, 1500)
	setAttempts(t, pool, evs[1].ID, 1_000_000)
	cfg := fastRetries
	cfg.Pool, cfg.MaxAttempts = pool, delivery.MaxAttemptsLimit
	cfg.Sink = funcSink(func(context.Context, *event.Event) error { return fmt.Errorf("sink down") })
	dispatchAll(t, cfg, evs)
	for _, ev := range evs {
		waitRow(t, pool, ev.ID, func(r row) bool { return r.status == "dead" })
	}

	cfg.MaxAttempts = delivery.MaxAttemptsLimit + 1
	if _, err := delivery.NewDispatcher(cfg); err == nil || !strings.Contains(err.Error(), "MaxAttempts") {
		t.Fatalf("MaxAttempts past the limit: %v, want an error naming it", err)
	}
}

func setAttempts(t *testing.T, pool *pgxpool.Pool, id string, n int) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), `UPDATE stripe_webhook_deliveries SET attempts = $2 WHERE event_id = $1`, id, n); err != nil {
		t.Fatal(err)
	}
}
