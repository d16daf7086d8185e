package delivery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Statuses of a row.
const (
	StatusPending   = "pending"
	StatusDelivered = "delivered"
	StatusDead      = "dead"
)

// ErrNotFound is returned for an event id with no row.
var ErrNotFound = errors.New("no such event")

// EventRow is one stored event and its delivery state.
type EventRow struct {
	ID            string     `json:"id"`
	Type          string     `json:"type"`
	Status        string     `json:"status"`
	Livemode      bool       `json:"livemode"`
	Account       string     `json:"account,omitempty"`
	APIVersion    string     `json:"api_version,omitempty"`
	Created       *time.Time `json:"created,omitempty"`
	ReceivedAt    time.Time  `json:"received_at"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt time.Time  `json:"next_attempt_at"`
	LockedUntil   *time.Time `json:"locked_until,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	DeliveredAt   *time.Time `json:"delivered_at,omitempty"`
}

// Attempt is one entry of the delivery history.
type Attempt struct {
	At       time.Time `json:"at"`
	OK       bool      `json:"ok"`
	Error    string    `json:"error,omitempty"`
	Instance string    `json:"instance"`
}

// ListFilter selects rows for ListEvents; zero fields match everything.
type ListFilter struct {
	Status string
	Type   string
	Since  time.Time // received at or after
	Limit  int       // defaults to 100
}

const rowColumns = `event_id, event_type, status, livemode, COALESCE(account, ''), COALESCE(api_version, ''),
	stripe_created, received_at, attempts, next_attempt_at, locked_until, COALESCE(last_error, ''), delivered_at`

func scanRow(row pgx.Row, r *EventRow, extra ...any) error {
	return row.Scan(append([]any{&r.ID, &r.Type, &r.Status, &r.Livemode, &r.Account, &r.APIVersion,
		&r.Created, &r.ReceivedAt, &r.Attempts, &r.NextAttemptAt, &r.LockedUntil, &r.LastError, &r.DeliveredAt}, extra...)...)
}

// ListEvents returns the newest rows matching f.
func ListEvents(ctx context.Context, pool *pgxpool.Pool, f ListFilter) ([]EventRow, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := pool.Query(ctx, `SELECT `+rowColumns+` FROM stripe_webhook_events
		WHERE ($1 = '' OR status = $1) AND ($2 = '' OR event_type = $2) AND received_at >= $3
		ORDER BY received_at DESC, event_id LIMIT $4`, f.Status, f.Type, f.Since, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("listing events: %w", err)
	}
	defer rows.Close()
	var out []EventRow
	for rows.Next() {
		var r EventRow
		if err := scanRow(rows, &r); err != nil {
			return nil, fmt.Errorf("listing events: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ShowEvent returns one row, its raw payload and its delivery history.
func ShowEvent(ctx context.Context, pool *pgxpool.Pool, id string) (EventRow, []byte, []Attempt, error) {
	var r EventRow
	var payload []byte
	err := scanRow(pool.QueryRow(ctx, `SELECT `+rowColumns+`, payload FROM stripe_webhook_events WHERE event_id = $1`, id), &r, &payload)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, nil, nil, fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	if err != nil {
		return r, nil, nil, fmt.Errorf("reading %s: %w", id, err)
	}
	rows, err := pool.Query(ctx, `SELECT attempted_at, ok, COALESCE(error, ''), instance
		FROM stripe_webhook_delivery_attempts WHERE event_id = $1 ORDER BY attempted_at`, id)
	if err != nil {
		return r, nil, nil, fmt.Errorf("reading the history of %s: %w", id, err)
	}
	defer rows.Close()
	var history []Attempt
	for rows.Next() {
		var a Attempt
		if err := rows.Scan(&a.At, &a.OK, &a.Error, &a.Instance); err != nil {
			return r, nil, nil, err
		}
		history = append(history, a)
	}
	return r, payload, history, rows.Err()
}

// replaySQL puts rows back to pending, due now, with a fresh attempt count.
// A pending row that an instance holds keeps its lease, so it is not
// delivered twice at once.
const replaySQL = `
UPDATE stripe_webhook_events
SET status = 'pending', attempts = 0, next_attempt_at = now(), delivered_at = NULL,
	locked_until = CASE WHEN status = 'pending' AND locked_until > now() THEN locked_until END
WHERE `

// Replay puts the given events back to pending and returns the ids it
// found; the others do not exist.
func Replay(ctx context.Context, pool *pgxpool.Pool, ids []string) ([]string, error) {
	rows, err := pool.Query(ctx, replaySQL+`event_id = ANY($1::text[]) RETURNING event_id`, ids)
	if err != nil {
		return nil, fmt.Errorf("replaying: %w", err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("replaying: %w", err)
	}
	return found, nil
}

// ReplayStatus puts every row of status received since since back to
// pending and returns how many.
func ReplayStatus(ctx context.Context, pool *pgxpool.Pool, status string, since time.Time) (int64, error) {
	tag, err := pool.Exec(ctx, replaySQL+`status = $1 AND received_at >= $2`, status, since)
	if err != nil {
		return 0, fmt.Errorf("replaying %s events: %w", status, err)
	}
	return tag.RowsAffected(), nil
}
