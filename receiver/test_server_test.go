package receiver

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/store"
)

// discardQueue takes every accepted event and delivers none.
type discardQueue struct{}

func (discardQueue) Enqueue(*event.Event, store.Lease) bool { return true }

// newTestServer is a Server on pool, signed with secretA, that delivers
// nothing; tune, if set, adjusts its config. Its deduper stops when the
// test ends.
func newTestServer(tb testing.TB, pool *pgxpool.Pool, tune func(*Config)) *Server {
	tb.Helper()
	d, err := dedup.New(dedup.Config{Pool: pool})
	if err != nil {
		tb.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = d.Stop(context.Background()) })
	v, err := NewVerifier([]string{secretA}, 5*time.Minute)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := Config{Verifier: v, Deduper: d, Queue: discardQueue{}, Pool: pool}
	if tune != nil {
		tune(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
