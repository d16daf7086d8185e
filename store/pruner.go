package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// keptSQL is true for an event that must be kept: a delivery of it is
// pending, or went dead less than the dead retention ago ($2 ms).
const keptSQL = `EXISTS (
	SELECT 1 FROM stripe_webhook_deliveries d
	WHERE d.event_id = e.event_id
		AND (d.status = 'pending'
			OR (d.status = 'dead' AND COALESCE(d.dead_at, e.received_at) >= now() - $2::bigint * interval '1 millisecond')))`

// windowSQL is the end of the walk's next window: the last of at most
// $2 events older than the retention ($1 ms) after the cursor ($3, $4),
// in (received_at, event_id) order, and how many the window holds. It
// reads the index on received_at and nothing else, kept or not, so one
// statement scans at most $2 rows however many kept events lie ahead: the
// walk moves over a block of kept events a window at a time.
// $1 retention ms, $2 scan bound, $3 cursor received_at, $4 cursor event id.
const windowSQL = `
SELECT w.received_at, w.event_id, count(*) OVER () FROM (
	SELECT e.received_at, e.event_id FROM stripe_webhook_events e
	WHERE e.received_at < now() - $1::bigint * interval '1 millisecond'
		AND e.received_at >= $3 AND (e.received_at, e.event_id) > ($3, $4)
	ORDER BY e.received_at, e.event_id
	LIMIT $2) w
ORDER BY w.received_at DESC, w.event_id DESC
LIMIT 1`

// pickSQL locks one small batch of the events in the window, after the
// cursor ($3, $4) and up to its end ($5, $6), that look prunable: every
// delivery delivered (or none: unrouted), or dead long enough. It skips
// events another transaction holds (another pruner, or a replay giving
// one a pending delivery). Rows of the previous version wait to be
// adopted.
// $1 batch size, $2 dead retention ms, $3, $4 cursor, $5, $6 window end.
const pickSQL = `
SELECT e.event_id, e.received_at FROM stripe_webhook_events e
WHERE e.received_at >= $3 AND e.received_at <= $5
	AND (e.received_at, e.event_id) > ($3, $4) AND (e.received_at, e.event_id) <= ($5, $6)
	AND e.status = '` + ledgerRouted + `'
	AND NOT ` + keptSQL + `
ORDER BY e.received_at, e.event_id
LIMIT $1
FOR UPDATE OF e SKIP LOCKED`

// pruneSQL deletes the picked events, checking their deliveries again in a
// statement of its own, so with a fresh snapshot: a delivery put back to
// pending after pickSQL began keeps its event. Deliveries and history go
// with their event (ON DELETE CASCADE).
// $1 event ids, $2 dead retention ms.
const pruneSQL = `
DELETE FROM stripe_webhook_events e
WHERE e.event_id = ANY($1::text[]) AND NOT ` + keptSQL

// PruneParams bounds one PruneBatch.
type PruneParams struct {
	Retention     time.Duration // events received longer ago than this are candidates
	DeadRetention time.Duration // a dead delivery keeps its event this long from its death
	BatchSize     int           // events deleted at most
	// ScanSize bounds the events one batch looks at, kept or not; 0 is
	// 20 × BatchSize. It is at least BatchSize.
	ScanSize int
	After    PruneCursor // the walk's cursor: the batch looks at events after it
}

// PruneCursor is a place in the pruner's walk, which goes through the
// ledger in (received_at, event_id) order; the zero cursor is its start.
type PruneCursor struct {
	ReceivedAt time.Time
	EventID    string
}

// PruneBatchResult is what one PruneBatch did.
type PruneBatchResult struct {
	Scanned int         // events looked at, at most ScanSize
	Picked  int         // of those, found prunable and locked, at most BatchSize
	Deleted int64       // of those, deleted (a second look may keep some)
	Next    PruneCursor // where the next batch goes on
	// Done is set when the batch reached the newest event older than the
	// retention: the walk is over.
	Done bool
}

// PruneBatch deletes one batch of prunable events, with their deliveries
// and history, in one transaction. It looks at the next ScanSize events
// of the walk after p.After (a window: windowSQL), picks at most
// BatchSize prunable ones among them (pickSQL) and deletes those still
// prunable (pruneSQL). The walk moves past the whole window unless the
// batch filled up, and then past the last event picked: a block of kept
// events of any size is passed a window at a time, no statement looks at
// more than ScanSize events, and the events behind the block are reached.
func (s *Store) PruneBatch(ctx context.Context, p PruneParams) (PruneBatchResult, error) {
	scan := p.ScanSize
	if scan == 0 {
		scan = 20 * p.BatchSize
	}
	scan = max(scan, p.BatchSize)
	res := PruneBatchResult{Next: p.After}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var end PruneCursor
		err := tx.QueryRow(ctx, windowSQL, p.Retention.Milliseconds(), scan, p.After.ReceivedAt, p.After.EventID).
			Scan(&end.ReceivedAt, &end.EventID, &res.Scanned)
		if errors.Is(err, pgx.ErrNoRows) {
			res.Done = true
			return nil
		}
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, pickSQL, p.BatchSize, p.DeadRetention.Milliseconds(),
			p.After.ReceivedAt, p.After.EventID, end.ReceivedAt, end.EventID)
		if err != nil {
			return err
		}
		var ids []string
		var last PruneCursor
		if _, err := pgx.ForEachRow(rows, []any{&last.EventID, &last.ReceivedAt}, func() error {
			ids = append(ids, last.EventID)
			return nil
		}); err != nil {
			return err
		}
		res.Picked = len(ids)
		if res.Picked < p.BatchSize {
			// Every prunable event of the window that was not locked
			// elsewhere is picked: the walk goes on after the window.
			res.Next, res.Done = end, res.Scanned < scan
		} else {
			res.Next = last
		}
		if res.Picked == 0 {
			return nil
		}
		tag, err := tx.Exec(ctx, pruneSQL, ids, p.DeadRetention.Milliseconds())
		res.Deleted = tag.RowsAffected()
		return err
	})
	if err != nil {
		return PruneBatchResult{Next: p.After}, err
	}
	return res, nil
}
