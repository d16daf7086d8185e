package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/ratelog"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/store"
)

// TestResultWriteSplitsAroundABadRow: a chunk that Postgres refuses for
// one row's data (here a NUL, which slipped past cleaning) is split; every
// other row is written, and the bad one is stored without its error text.
func TestResultWriteSplitsAroundABadRow(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ctx := context.Background()
	var chunk []result
	for i := range 9 {
		id := fmt.Sprintf("evt_split_%d", i)
		var lease time.Time
		err := pool.QueryRow(ctx, `WITH e AS (INSERT INTO stripe_webhook_events (event_id, event_type, payload, status)
				VALUES ($1, 'invoice.paid', '{}', 'routed') RETURNING event_id)
			INSERT INTO stripe_webhook_deliveries (event_id, destination, locked_until)
			SELECT event_id, 'default', now() + interval '1 minute' FROM e RETURNING locked_until`, id).Scan(&lease)
		if err != nil {
			t.Fatal(err)
		}
		r := result{id: id, dest: "default", lease: lease, maxAttempts: 5, ok: i%2 == 0}
		if !r.ok {
			r.err = "sink down"
		}
		chunk = append(chunk, r)
	}
	chunk[5].err = "bad \x00 byte" // Postgres text cannot hold NUL: SQLSTATE 22021
	c := &completer{store: store.New(pool), cfg: DispatcherConfig{Pool: pool, MaxAttempts: 5, RetryBase: time.Second, RetryMax: time.Hour,
		MaxBatch: 100, Instance: "test", Logger: slog.New(slog.DiscardHandler)}}
	c.errLog.Log, c.stale.Log = c.cfg.Logger, c.cfg.Logger
	c.dead, c.retry = newDeadLog(c.cfg.Logger), map[string]*ratelog.Logger{}
	held, err := c.writeSplitting(ctx, chunk)
	if len(held) != 0 || err != nil {
		t.Fatalf("held %d results (%v): a data error must not hold the chunk back", len(held), err)
	}
	for i, r := range chunk {
		var status, lastErr string
		var attempts int
		if err := pool.QueryRow(ctx, `SELECT status, attempts, COALESCE(last_error, '') FROM stripe_webhook_deliveries WHERE event_id = $1`, r.id).
			Scan(&status, &attempts, &lastErr); err != nil {
			t.Fatal(err)
		}
		want, wantErr := "delivered", ""
		switch {
		case i == 5:
			want, wantErr = "pending", unstorableError
		case !r.ok:
			want, wantErr = "pending", "sink down"
		}
		if status != want || attempts != 1 || lastErr != wantErr {
			t.Errorf("%s: %s, %d attempts, %q; want %s, 1 attempt, %q", r.id, status, attempts, lastErr, want, wantErr)
		}
	}
}
