package store

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/internal/testenv"
)

// fillPruneBlock stores, in walk order: before events received 96h ago
// and delivered (prunable), a block of kept events received 72h ago with
// a delivery still pending (a destination down for days), and behind
// events received 48h ago and delivered (prunable); each a millisecond
// apart. It returns the pool.
func fillPruneBlock(t *testing.T, before, block, behind int) *pgxpool.Pool {
	t.Helper()
	pool := testenv.Postgres(t)
	_, err := pool.Exec(context.Background(), `
		INSERT INTO stripe_webhook_events (event_id, event_type, payload, status, received_at)
			SELECT 'evt_before_' || lpad(i::text, 6, '0'), 'invoice.paid', '{}'::bytea, 'routed', now() - interval '96 hours' + i * interval '1 millisecond'
			FROM generate_series(1, $1) i
			UNION ALL
			SELECT 'evt_kept_' || lpad(i::text, 6, '0'), 'invoice.paid', '{}'::bytea, 'routed', now() - interval '72 hours' + i * interval '1 millisecond'
			FROM generate_series(1, $2) i
			UNION ALL
			SELECT 'evt_behind_' || lpad(i::text, 6, '0'), 'invoice.paid', '{}'::bytea, 'routed', now() - interval '48 hours' + i * interval '1 millisecond'
			FROM generate_series(1, $3) i`, before, block, behind)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(context.Background(), `
		INSERT INTO stripe_webhook_deliveries (event_id, destination, status, delivered_at, received_at)
			SELECT event_id, 'default', CASE WHEN event_id LIKE 'evt_kept_%' THEN 'pending' ELSE 'delivered' END,
				CASE WHEN event_id LIKE 'evt_kept_%' THEN NULL ELSE now() END, received_at
			FROM stripe_webhook_events;
		ANALYZE stripe_webhook_events, stripe_webhook_deliveries`)
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

func countEvents(t *testing.T, pool *pgxpool.Pool, like string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM stripe_webhook_events WHERE event_id LIKE $1`, like).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPruneWalksPastABlockOfKeptEvents: a block of kept events six times
// larger than one batch's scan bound, with prunable events before and
// behind it. The walk used to move only past events it deleted, so one
// statement had to read the whole block (at ten million rows it outlived
// its 30 s bound, and the walk never moved again). Now every batch looks
// at ScanSize events at most, the walk moves on every batch, and the
// events behind the block are deleted; the kept ones stay.
func TestPruneWalksPastABlockOfKeptEvents(t *testing.T) {
	t.Parallel()
	const scan, batch, block = 50, 10, 300
	pool := fillPruneBlock(t, 15, block, 40)
	s := New(pool)
	p := PruneParams{Retention: 24 * time.Hour, DeadRetention: 24 * time.Hour, BatchSize: batch, ScanSize: scan}
	var deleted int64
	batches := 0
	for {
		res, err := s.PruneBatch(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		batches++
		if res.Scanned > scan || res.Picked > batch {
			t.Fatalf("batch %d scanned %d and picked %d events, bounds %d and %d", batches, res.Scanned, res.Picked, scan, batch)
		}
		deleted += res.Deleted
		if res.Done {
			break
		}
		if !walksOn(res.Next, p.After) {
			t.Fatalf("batch %d: the walk did not move (%+v, after %+v)", batches, res.Next, p.After)
		}
		if batches > 100 {
			t.Fatal("the walk does not end")
		}
		p.After = res.Next
	}
	if deleted != 55 || countEvents(t, pool, "evt_behind_%") != 0 || countEvents(t, pool, "evt_before_%") != 0 {
		t.Fatalf("deleted %d, %d behind the block and %d before it left; want all 55 prunable deleted",
			deleted, countEvents(t, pool, "evt_behind_%"), countEvents(t, pool, "evt_before_%"))
	}
	if n := countEvents(t, pool, "evt_kept_%"); n != block {
		t.Fatalf("%d kept events left, want %d", n, block)
	}
	if batches < block/scan {
		t.Fatalf("%d batches for a block of %d at %d a batch", batches, block, scan)
	}
}

func walksOn(a, b PruneCursor) bool {
	if c := a.ReceivedAt.Compare(b.ReceivedAt); c != 0 {
		return c > 0
	}
	return a.EventID > b.EventID
}

// TestPruneStatementsReadAtMostTheScanBound: each statement of a batch,
// started just before a block of kept events, reads at most ScanSize rows
// of the ledger (counted by pg_stat_xact_user_tables in its own
// transaction), however large the block (the statement before read the
// whole block, 500 rows here). The index plans are forced, as a
// large ledger gets them: a ledger this small would be read whole.
func TestPruneStatementsReadAtMostTheScanBound(t *testing.T) {
	t.Parallel()
	// slack is the row an index scan reads past its limit and the few
	// the planner reads to find where the index ends.
	const scan, batch, slack = 50, 10, 10
	pool := fillPruneBlock(t, 0, 500, 40)
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, q := range []string{"SET LOCAL enable_seqscan = off", "SET LOCAL enable_bitmapscan = off"} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		read := func() int64 {
			var n int64
			if err := tx.QueryRow(ctx, `SELECT COALESCE(seq_tup_read, 0) + COALESCE(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables
				WHERE relid = 'stripe_webhook_events'::regclass`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		explain := func(sql string, args ...any) {
			rows, err := tx.Query(ctx, "EXPLAIN ANALYZE "+sql, args...)
			if err != nil {
				t.Fatal(err)
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range lines {
				t.Log(l)
			}
		}
		var zero time.Time
		var end PruneCursor
		var n int
		r0 := read()
		if err := tx.QueryRow(ctx, windowSQL, (24*time.Hour).Milliseconds(), scan, zero, "").Scan(&end.ReceivedAt, &end.EventID, &n); err != nil {
			return err
		}
		if r := read() - r0; r > scan+slack {
			t.Errorf("the window read %d rows, bound %d", r, scan)
			explain(windowSQL, (24 * time.Hour).Milliseconds(), scan, zero, "")
		}
		r0 = read()
		rows, err := tx.Query(ctx, pickSQL, batch, (24 * time.Hour).Milliseconds(), zero, "", end.ReceivedAt, end.EventID)
		if err != nil {
			return err
		}
		picked, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if r := read() - r0; r > scan+slack || len(picked) != 0 {
			t.Errorf("the pick read %d rows, bound %d, and picked %v in a window of kept events", r, scan, picked)
			explain(pickSQL, batch, (24 * time.Hour).Milliseconds(), zero, "", end.ReceivedAt, end.EventID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
