package service

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/receiver"
	"github.com/oncehook/oncehook/store"
)

type dropQueue struct{}

func (dropQueue) Enqueue(*event.Event, store.Lease) bool { return true }

// TestListenerStopsRightAfterStart: a Stop that comes before the serving
// goroutine has taken the listener (a SIGTERM just after the start) still
// stops it. fasthttp's Shutdown closes only the listeners Serve took, so
// Serve went on serving and Stop waited for it until its deadline (seen
// as a 30 s stop in TestFailoverWhileNoInstanceRanIsFoundAtStart).
func TestListenerStopsRightAfterStart(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none") // never connected
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	dd, err := dedup.New(dedup.Config{Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := receiver.NewVerifier([]string{"whsec_test"}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		srv, err := receiver.New(receiver.Config{Verifier: verifier, Deduper: dd, Queue: dropQueue{}, Pool: pool,
			MaxBodyBytes: 1 << 16, Concurrency: 1, MaxConns: 8, MaxBodyBytesInFlight: 1 << 17})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l := newListener(srv, ln)
		if err := l.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = l.Stop(ctx)
		cancel()
		if err != nil {
			t.Fatalf("stop %d, right after its start: %v", i, err)
		}
	}
}
