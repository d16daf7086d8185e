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

// CountDead counts the dead letters f selects.
func CountDead(ctx context.Context, pool *pgxpool.Pool, f DeadFilter) (int64, error) {
	args, err := f.args()
	if err != nil {
		return 0, err
	}
	var n int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM stripe_webhook_deliveries d WHERE `+deadMatch, args).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting dead letters of %s: %w", f.Destination, err)
	}
	return n, nil
}

// ReplayDead puts every dead letter f selects back to pending, in batches,
// and returns how many. Each batch locks its events FOR KEY SHARE first,
// as Replay does, so the pruner cannot delete them meanwhile.
func ReplayDead(ctx context.Context, pool *pgxpool.Pool, f DeadFilter) (int64, error) {
	args, err := f.args()
	if err != nil {
		return 0, err
	}
	args["batch"] = replayBatch
	var total int64
	for {
		tag, err := pool.Exec(ctx, `WITH picked AS (
				SELECT d.event_id FROM stripe_webhook_deliveries d WHERE `+deadMatch+`
				ORDER BY d.received_at LIMIT @batch),
			locked AS (
				SELECT e.event_id FROM stripe_webhook_events e
				WHERE e.event_id IN (SELECT event_id FROM picked) ORDER BY e.event_id FOR KEY SHARE)
			UPDATE stripe_webhook_deliveries d SET `+replaySet+`
			FROM locked WHERE d.event_id = locked.event_id AND d.destination = @dest AND d.status = 'dead'`, args)
		if err != nil {
			return total, fmt.Errorf("replaying dead letters of %s: %w", f.Destination, err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() == 0 {
			return total, nil
		}
	}
}

// Backlog is one destination's undelivered work, for the console.
type Backlog struct {
	Destination string
	Configured  bool
	Pending     int64
	Dead        int64
	// Capped is set when a count reached BacklogCountCap and stopped.
	Capped bool
	// OldestPendingSeconds is the age of the oldest pending delivery.
	OldestPendingSeconds float64
}

// BacklogCountCap bounds the index entries counted per destination and
// status.
const BacklogCountCap = 100000

// Backlogs returns the backlog of every configured destination and of
// every other destination that has pending or dead deliveries, reading
// only the partial indexes of those two states.
func Backlogs(ctx context.Context, pool *pgxpool.Pool, configured []string) ([]Backlog, error) {
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
		FROM names n ORDER BY n.destination`, configured, BacklogCountCap)
	if err != nil {
		return nil, fmt.Errorf("reading backlogs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Backlog, error) {
		var b Backlog
		err := r.Scan(&b.Destination, &b.Configured, &b.Pending, &b.Dead, &b.OldestPendingSeconds)
		b.Capped = b.Pending >= BacklogCountCap || b.Dead >= BacklogCountCap
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading backlogs: %w", err)
	}
	return out, nil
}
