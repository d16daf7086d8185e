package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/oncehook/oncehook/route"
)

// A replay puts deliveries back to pending, due now, with a fresh attempt
// count; a backfill gives a destination a pending delivery of events it
// never had. Every statement here does a bounded amount of work (the ids
// it is given, or one batch of a walk), so that a replay of a million
// dead letters is many short transactions, never one long one; the walks
// themselves are in admin.

// replaySet puts a delivery back to pending, due now, with a fresh attempt
// count. A pending delivery that an instance holds keeps its lease, so it
// is not delivered twice at once.
const replaySet = `status = 'pending', attempts = 0, next_attempt_at = now(), delivered_at = NULL, dead_at = NULL,
	locked_until = CASE WHEN d.status = 'pending' AND d.locked_until > now() THEN d.locked_until END`

// Replays and backfills lock the events they give a pending delivery (FOR
// KEY SHARE, in event_id order) before they write it: the pruner, which
// locks the events it deletes FOR UPDATE SKIP LOCKED and checks their
// deliveries again after, can then never delete an event whose delivery
// was just put back to pending.

// lockedIDs is a CTE, locked: the events of the ids in $1 that exist,
// locked FOR KEY SHARE in event_id order.
const lockedIDs = `locked AS (
	SELECT event_id FROM stripe_webhook_events WHERE event_id = ANY($1::text[]) ORDER BY event_id FOR KEY SHARE)`

// ReplayIDsOptions says which deliveries of the given events ReplayIDs
// puts back.
type ReplayIDsOptions struct {
	// Destination, when set, replays only the delivery to it; else every
	// delivery of the events, whatever its state.
	Destination string
	// Create gives an event that has no delivery to Destination one.
	Create bool
	// Existing replays only existing deliveries that are not pending
	// (delivered or dead); with OnlyDead, only dead ones. It needs
	// Destination and excludes Create.
	Existing, OnlyDead bool
}

// ReplayIDs puts the deliveries of the given events back to pending, as o
// says, in one statement, and returns the ids of the events it replayed
// (each once); the others do not exist or had nothing to replay. Callers
// bound len(ids).
func (s *Store) ReplayIDs(ctx context.Context, ids []string, o ReplayIDsOptions) ([]string, error) {
	var sql string
	var args []any
	switch {
	case (o.Existing || o.Create || o.OnlyDead) && o.Destination == "":
		return nil, errors.New("replaying: no destination")
	case o.Existing && o.Create:
		return nil, errors.New("replaying: both existing deliveries only and creating them")
	case o.Existing:
		sql = `WITH ` + lockedIDs + `,
			r AS (
				UPDATE stripe_webhook_deliveries d SET ` + replaySet + `
				FROM locked
				WHERE d.event_id = locked.event_id AND d.destination = $2
					AND d.status <> 'pending' AND (NOT $3 OR d.status = 'dead')
				RETURNING d.event_id)
			SELECT DISTINCT event_id FROM r`
		args = []any{ids, o.Destination, o.OnlyDead}
	case o.Create:
		sql = `WITH r AS (
				INSERT INTO stripe_webhook_deliveries AS d (event_id, destination, received_at)
				SELECT event_id, $2, received_at FROM stripe_webhook_events
				WHERE event_id = ANY($1::text[]) AND status = 'routed'
				ORDER BY event_id
				FOR KEY SHARE
				ON CONFLICT (event_id, destination) DO UPDATE SET ` + replaySet + `
				RETURNING d.event_id)
			SELECT DISTINCT event_id FROM r`
		args = []any{ids, o.Destination}
	default:
		sql = `WITH ` + lockedIDs + `,
			r AS (
				UPDATE stripe_webhook_deliveries d SET ` + replaySet + `
				FROM locked WHERE d.event_id = locked.event_id AND ($2 = '' OR d.destination = $2)
				RETURNING d.event_id)
			SELECT DISTINCT event_id FROM r`
		args = []any{ids, o.Destination}
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("replaying: %w", err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("replaying: %w", err)
	}
	return found, nil
}

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

// ReplayBatch puts up to b.Size deliveries that f selects back to pending,
// oldest first from b.After, in one statement. Dead letters are walked
// through the dead-letter index of f.Destination; delivered deliveries
// (of f.Destination, or of every destination) by walking b.Size events of
// the ledger. Each batch locks its events FOR KEY SHARE first, so the
// pruner cannot delete them meanwhile.
func (s *Store) ReplayBatch(ctx context.Context, f DeliveryFilter, b Batch) (BatchResult, error) {
	args, err := f.args()
	if err != nil {
		return BatchResult{}, err
	}
	b.walkArgs(args)
	var sql string
	if f.Status == StatusDead {
		sql = `WITH picked AS (
				SELECT d.event_id, d.received_at FROM stripe_webhook_deliveries d
				WHERE ` + deadMatch + ` AND (d.dead_at IS NULL OR d.dead_at <= @started)
					AND (d.received_at > @at OR (d.received_at = @at AND d.event_id COLLATE "C" > @id))
				ORDER BY d.received_at, d.event_id COLLATE "C" LIMIT @batch),
			locked AS (
				SELECT e.event_id FROM stripe_webhook_events e
				WHERE e.event_id IN (SELECT event_id FROM picked) ORDER BY e.event_id FOR KEY SHARE),
			done AS (
				UPDATE stripe_webhook_deliveries d SET ` + replaySet + `
				FROM locked WHERE d.event_id = locked.event_id AND d.destination = @dest AND d.status = 'dead'
				RETURNING d.event_id)
			SELECT (SELECT count(*) FROM done), (SELECT count(*) FROM picked), last.received_at, last.event_id
			FROM (SELECT 1) one LEFT JOIN (
				SELECT received_at, event_id FROM picked ORDER BY received_at DESC, event_id COLLATE "C" DESC LIMIT 1) last ON true`
	} else {
		sql = `WITH picked AS (
				SELECT e.event_id, e.received_at FROM stripe_webhook_events e
				WHERE e.received_at >= @since AND e.received_at < @until
					AND (e.received_at > @at OR (e.received_at = @at AND e.event_id COLLATE "C" > @id))
					AND (@anytype OR e.event_type LIKE ANY(@types::text[]))
				ORDER BY e.received_at, e.event_id COLLATE "C" LIMIT @batch),
			locked AS (
				SELECT e.event_id FROM stripe_webhook_events e
				WHERE e.event_id IN (SELECT event_id FROM picked) ORDER BY e.event_id FOR KEY SHARE),
			done AS (
				UPDATE stripe_webhook_deliveries d SET ` + replaySet + `
				FROM locked WHERE d.event_id = locked.event_id AND (@dest = '' OR d.destination = @dest)
					AND d.status = 'delivered' AND (d.delivered_at IS NULL OR d.delivered_at <= @started)
				RETURNING d.event_id)
			SELECT (SELECT count(*) FROM done), (SELECT count(*) FROM picked), last.received_at, last.event_id
			FROM (SELECT 1) one LEFT JOIN (
				SELECT received_at, event_id FROM picked ORDER BY received_at DESC, event_id COLLATE "C" DESC LIMIT 1) last ON true`
	}
	r, err := walked(s.pool.QueryRow(ctx, sql, args), max(1, b.Size))
	if err != nil {
		return r, fmt.Errorf("replaying %s deliveries: %w", f.Status, err)
	}
	return r, nil
}

// BackfillBatch gives destination a pending delivery of each of the next
// b.Size events received since since (oldest first from b.After) that
// filter matches and that it has none of, in one statement.
func (s *Store) BackfillBatch(ctx context.Context, destination string, filter route.Filter, since time.Time, b Batch) (BatchResult, error) {
	if err := route.ValidName(destination); err != nil {
		return BatchResult{}, err
	}
	args := pgx.NamedArgs{"dest": destination, "since": since, "types": filter.LikePatterns(), "livemode": filter.LivemodeSQL()}
	b.walkArgs(args)
	r, err := walked(s.pool.QueryRow(ctx, `WITH picked AS (
			SELECT event_id, received_at FROM stripe_webhook_events
			WHERE received_at >= @since AND status = 'routed'
				AND (received_at > @at OR (received_at = @at AND event_id COLLATE "C" > @id))
				AND event_type LIKE ANY(@types::text[]) AND (@livemode::bool IS NULL OR livemode = @livemode)
			ORDER BY received_at, event_id COLLATE "C" LIMIT @batch),
		done AS (
			INSERT INTO stripe_webhook_deliveries (event_id, destination, received_at)
			SELECT e.event_id, @dest, e.received_at FROM stripe_webhook_events e
			WHERE e.event_id IN (SELECT event_id FROM picked)
			ORDER BY e.event_id
			FOR KEY SHARE
			ON CONFLICT (event_id, destination) DO NOTHING
			RETURNING event_id)
		SELECT (SELECT count(*) FROM done), (SELECT count(*) FROM picked), last.received_at, last.event_id
		FROM (SELECT 1) one LEFT JOIN (
			SELECT received_at, event_id FROM picked ORDER BY received_at DESC, event_id COLLATE "C" DESC LIMIT 1) last ON true`, args), max(1, b.Size))
	if err != nil {
		return r, fmt.Errorf("backfilling %s: %w", destination, err)
	}
	return r, nil
}
