package store

// What replays walk and count: the filter of a replay by state, the dead
// letters' count, and the batches a walk goes by. The replays themselves
// are transitions of the state machine, in deliveries.go.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/oncehook/oncehook/route"
)

// DeliveryFilter selects deliveries of one state by their destination and
// their event; zero fields other than Status match everything.
type DeliveryFilter struct {
	// Status is dead or delivered.
	Status Status
	// Destination is the deliveries' destination; required for dead ones.
	Destination string
	// Types are event type patterns (invoice.*), as in ListParams.
	Types []string
	// Since and Until bound the event's received_at: at or after Since,
	// before Until.
	Since, Until time.Time
}

func (f DeliveryFilter) args() (pgx.NamedArgs, error) {
	switch {
	case f.Status != StatusDead && f.Status != StatusDelivered:
		return nil, fmt.Errorf("deliveries of status %q cannot be replayed: want dead or delivered", f.Status)
	case f.Status == StatusDead && f.Destination == "":
		return nil, errors.New("dead letters: no destination")
	}
	for _, t := range f.Types {
		if err := route.ValidPattern(t); err != nil {
			return nil, err
		}
	}
	until := f.Until
	if until.IsZero() {
		until = farFuture
	}
	return pgx.NamedArgs{"dest": f.Destination, "anytype": len(f.Types) == 0, "types": route.Filter{Types: f.Types}.LikePatterns(),
		"since": f.Since, "until": until}, nil
}

// deadMatch selects a filter's dead deliveries d through the dead-letter
// index.
const deadMatch = `d.destination = @dest AND d.status = 'dead'
	AND d.received_at >= @since AND d.received_at < @until
	AND (@anytype OR EXISTS (SELECT 1 FROM stripe_webhook_events e
		WHERE e.event_id = d.event_id AND e.event_type LIKE ANY(@types::text[])))`

// CountCap bounds the index entries one count reads (CountDead, and each
// destination and status of Backlogs): a count that reaches it means "at
// least this many".
const CountCap = 100000

// CountDead counts the dead letters f selects (f.Status is dead), up to
// CountCap.
func (s *Store) CountDead(ctx context.Context, f DeliveryFilter) (int64, error) {
	args, err := f.args()
	if err == nil && f.Status != StatusDead {
		err = errors.New("counting dead letters: the filter's status is not dead")
	}
	if err != nil {
		return 0, err
	}
	args["cap"] = CountCap
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM stripe_webhook_deliveries d WHERE `+deadMatch+` LIMIT @cap) x`, args).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting dead letters of %s: %w", f.Destination, err)
	}
	return n, nil
}

// Now is the database's clock: replays take only deliveries that were
// dead (or delivered) when they began, by this time.
func (s *Store) Now(ctx context.Context) (time.Time, error) {
	var now time.Time
	if err := s.pool.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
		return time.Time{}, fmt.Errorf("reading the database's clock: %w", err)
	}
	return now, nil
}

// Batch is one step of a walk in (received_at, event_id) order, oldest
// first.
type Batch struct {
	// After is where the walk stands: the batch starts after it. Zero:
	// from the start.
	After Cursor
	// Size bounds the rows the batch walks (dead letters, or ledger rows).
	Size int
	// Started is when the walk began: rows that changed state since are
	// left alone (a replayed delivery that died again is not replayed
	// twice). Zero: no bound.
	Started time.Time
}

// BatchResult is what one batch did: how many deliveries it replayed or
// created, and where the walk goes on from (nil: it is done).
type BatchResult struct {
	N    int64
	Next *Cursor
}

// walkArgs adds b's arguments to args.
func (b Batch) walkArgs(args pgx.NamedArgs) {
	args["at"], args["id"], args["batch"] = b.After.At, b.After.ID, max(1, b.Size)
	started := b.Started
	if started.IsZero() {
		started = farFuture
	}
	args["started"] = started
}

// walked reads a batch statement's (count, rows walked, last
// received_at, last id): a batch that walked fewer rows than its size
// reached the end.
func walked(row pgx.Row, size int) (BatchResult, error) {
	var r BatchResult
	var picked int
	var lastAt *time.Time
	var lastID *string
	if err := row.Scan(&r.N, &picked, &lastAt, &lastID); err != nil {
		return r, err
	}
	if lastAt != nil && picked >= size {
		r.Next = &Cursor{At: *lastAt, ID: *lastID}
	}
	return r, nil
}
