package delivery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DeadFilter selects one destination's dead letters; zero fields other
// than Destination match everything.
type DeadFilter struct {
	Destination string
	TypePrefix  string
	Since       time.Time
	Until       time.Time // received before it
}

// replayBatch bounds the deliveries one replay statement puts back, so a
// replay of a million dead letters holds no lock for long.
const replayBatch = 1000

func (f DeadFilter) args() (pgx.NamedArgs, error) {
	if f.Destination == "" {
		return nil, errors.New("dead letters: no destination")
	}
	until := f.Until
	if until.IsZero() {
		until = farFuture
	}
	return pgx.NamedArgs{"dest": f.Destination, "type": likePrefix(f.TypePrefix), "since": f.Since, "until": until}, nil
}

// deadMatch selects f's dead deliveries d through the dead-letter index.
const deadMatch = `d.destination = @dest AND d.status = 'dead'
	AND d.received_at >= @since AND d.received_at < @until
	AND (@type = '%' OR EXISTS (SELECT 1 FROM stripe_webhook_events e
		WHERE e.event_id = d.event_id AND e.event_type LIKE @type))`

// CountCap bounds the index entries one count reads (CountDead, and each
// destination and status of Backlogs): a count that reaches it means "at
// least this many".
const CountCap = 100000

// CountDead counts the dead letters f selects, up to CountCap.
func CountDead(ctx context.Context, pool *pgxpool.Pool, f DeadFilter) (int64, error) {
	args, err := f.args()
	if err != nil {
		return 0, err
	}
	args["cap"] = CountCap
	var n int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM stripe_webhook_deliveries d WHERE `+deadMatch+` LIMIT @cap) x`, args).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting dead letters of %s: %w", f.Destination, err)
	}
	return n, nil
}

// ReplayDead puts the dead letters f selects back to pending, oldest
// first in batches, at most max of them, and returns how many. It walks
// forward by keyset and takes only letters that were dead when it began,
// so a replayed delivery that dies again is not replayed twice. Each batch
// locks its events FOR KEY SHARE first, as Replay does, so the pruner
// cannot delete them meanwhile.
func ReplayDead(ctx context.Context, pool *pgxpool.Pool, f DeadFilter, max int64) (int64, error) {
	args, err := f.args()
	if err != nil {
		return 0, err
	}
	var started time.Time
	if err := pool.QueryRow(ctx, `SELECT now()`).Scan(&started); err != nil {
		return 0, fmt.Errorf("replaying dead letters of %s: %w", f.Destination, err)
	}
	args["started"] = started
	args["at"], args["id"] = time.Time{}, ""
	var total int64
	for total < max {
		args["batch"] = min(int64(replayBatch), max-total)
		var n int64
		var lastAt *time.Time
		var lastID *string
		err := pool.QueryRow(ctx, `WITH picked AS (
				SELECT d.event_id, d.received_at FROM stripe_webhook_deliveries d
				WHERE `+deadMatch+` AND (d.dead_at IS NULL OR d.dead_at <= @started)
					AND (d.received_at > @at OR (d.received_at = @at AND d.event_id COLLATE "C" > @id))
				ORDER BY d.received_at, d.event_id COLLATE "C" LIMIT @batch),
			locked AS (
				SELECT e.event_id FROM stripe_webhook_events e
				WHERE e.event_id IN (SELECT event_id FROM picked) ORDER BY e.event_id FOR KEY SHARE),
			done AS (
				UPDATE stripe_webhook_deliveries d SET `+replaySet+`
				FROM locked WHERE d.event_id = locked.event_id AND d.destination = @dest AND d.status = 'dead'
				RETURNING d.event_id)
			SELECT (SELECT count(*) FROM done), last.received_at, last.event_id
			FROM (SELECT 1) one LEFT JOIN (
				SELECT received_at, event_id FROM picked ORDER BY received_at DESC, event_id COLLATE "C" DESC LIMIT 1) last ON true`,
			args).Scan(&n, &lastAt, &lastID)
		if err != nil {
			return total, fmt.Errorf("replaying dead letters of %s: %w", f.Destination, err)
		}
		total += n
		if lastAt == nil {
			return total, nil
		}
		args["at"], args["id"] = *lastAt, *lastID
	}
	return total, nil
}

// ReplayExisting puts the given events' existing deliveries to
// destination back to pending, only dead ones when onlyDead is set, and
// returns the ids it replayed. Unlike Replay it never creates a delivery,
// and it leaves a pending one alone.
func ReplayExisting(ctx context.Context, pool *pgxpool.Pool, ids []string, destination string, onlyDead bool) ([]string, error) {
	return replayedIDs(ctx, pool, `WITH `+lockedIDs+`
		UPDATE stripe_webhook_deliveries d SET `+replaySet+`
		FROM locked
		WHERE d.event_id = locked.event_id AND d.destination = $2
			AND d.status <> 'pending' AND (NOT $3 OR d.status = 'dead')
		RETURNING d.event_id`, ids, destination, onlyDead)
}

// Backlog is one destination's undelivered work, for the console.
type Backlog struct {
	Destination string
	Configured  bool
	Pending     int64
	Dead        int64
	// OldestPendingSeconds is the age of the oldest pending delivery.
	OldestPendingSeconds float64
}

// Backlogs returns the backlog of every configured destination and of
// every other destination that has pending or dead deliveries, reading
// only the partial indexes of those two states.
func Backlogs(ctx context.Context, pool *pgxpool.Pool, configured []string) ([]Backlog, error) {
	if configured == nil {
		configured = []string{} // NULL would make = ANY() NULL
	}
	rows, err := pool.Query(ctx, `WITH RECURSIVE `+distinctDestinations("pending", "p")+`,
		`+distinctDestinations("dead", "x")+`,
		names AS (
			SELECT unnest($1::text[]) AS destination
			UNION SELECT destination FROM p WHERE destination IS NOT NULL
			UNION SELECT destination FROM x WHERE destination IS NOT NULL)
		SELECT n.destination, n.destination = ANY($1::text[]),
			(SELECT count(*) FROM (SELECT 1 FROM stripe_webhook_deliveries
				WHERE destination = n.destination AND status = 'pending' LIMIT $2) p),
			(SELECT count(*) FROM (SELECT 1 FROM stripe_webhook_deliveries
				WHERE destination = n.destination AND status = 'dead' LIMIT $2) x),
			COALESCE((SELECT extract(epoch FROM now() - min(received_at)) FROM stripe_webhook_deliveries
				WHERE destination = n.destination AND status = 'pending'), 0)::float8
		FROM names n ORDER BY n.destination`, configured, CountCap)
	if err != nil {
		return nil, fmt.Errorf("reading backlogs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Backlog, error) {
		var b Backlog
		err := r.Scan(&b.Destination, &b.Configured, &b.Pending, &b.Dead, &b.OldestPendingSeconds)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading backlogs: %w", err)
	}
	return out, nil
}
