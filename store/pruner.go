package store

import (
	"context"
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

// pickSQL locks one small batch of events older than the retention ($1
// ms) that look prunable: every delivery delivered (or none: unrouted),
// or dead long enough. It skips events another transaction holds (another
// pruner, or a replay giving one a pending delivery), and walks by
// received_at from $4 on, so that the events kept are passed once per
// walk. Rows of the previous version wait to be adopted.
// $1 retention ms, $2 dead retention ms, $3 batch size, $4 cursor.
const pickSQL = `
SELECT e.event_id, e.received_at FROM stripe_webhook_events e
WHERE e.received_at < now() - $1::bigint * interval '1 millisecond'
	AND e.received_at >= $4
	AND e.status = '` + ledgerRouted + `'
	AND NOT ` + keptSQL + `
ORDER BY e.received_at
LIMIT $3
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
	BatchSize     int           // events at most
	After         time.Time     // the walk's cursor: received at or after this
}

// PruneBatch deletes one batch of prunable events (see pickSQL), with
// their deliveries and history, in one transaction, and returns how many
// it picked and deleted and the received_at of the last one picked: the
// next batch's After.
func (s *Store) PruneBatch(ctx context.Context, p PruneParams) (picked int, deleted int64, last time.Time, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, pickSQL, p.Retention.Milliseconds(), p.DeadRetention.Milliseconds(), p.BatchSize, p.After)
		if err != nil {
			return err
		}
		var ids []string
		var id string
		var at time.Time
		if _, err := pgx.ForEachRow(rows, []any{&id, &at}, func() error {
			ids, last = append(ids, id), at
			return nil
		}); err != nil {
			return err
		}
		picked = len(ids)
		if picked == 0 {
			return nil
		}
		tag, err := tx.Exec(ctx, pruneSQL, ids, p.DeadRetention.Milliseconds())
		deleted = tag.RowsAffected()
		return err
	})
	return picked, deleted, last, err
}
