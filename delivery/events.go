package delivery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/route"
)

// Statuses of a delivery; StatusUnrouted is an event with no delivery.
const (
	StatusPending   = "pending"
	StatusDelivered = "delivered"
	StatusDead      = "dead"
	StatusUnrouted  = "unrouted"
)

// ErrNotFound is returned for an event id with no row.
var ErrNotFound = errors.New("no such event")

// EventRow is one delivery of a stored event, or an event that matched no
// destination (Status "unrouted", no Destination).
type EventRow struct {
	ID            string     `json:"id"`
	Type          string     `json:"type"`
	Destination   string     `json:"destination,omitempty"`
	Status        string     `json:"status"`
	Livemode      bool       `json:"livemode"`
	Account       string     `json:"account,omitempty"`
	APIVersion    string     `json:"api_version,omitempty"`
	Created       *time.Time `json:"created,omitempty"`
	ReceivedAt    time.Time  `json:"received_at"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	LockedUntil   *time.Time `json:"locked_until,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	DeliveredAt   *time.Time `json:"delivered_at,omitempty"`
	// Source is "reconcile" for an event the reconciler stored, empty for
	// a webhook.
	Source string `json:"source,omitempty"`
}

// Attempt is one entry of the delivery history.
type Attempt struct {
	At          time.Time `json:"at"`
	Destination string    `json:"destination"`
	OK          bool      `json:"ok"`
	Error       string    `json:"error,omitempty"`
	Instance    string    `json:"instance"`
}

// ListFilter selects rows for ListEvents; zero fields match everything.
type ListFilter struct {
	Status      string // pending, delivered, dead or unrouted
	Type        string // an event type, or a pattern such as invoice.*
	Destination string
	Since       time.Time // received at or after
	Limit       int       // defaults to 100
}

// deliveryColumns read an event (e) with one delivery (d), which may be
// missing: then the event matched no destination, or is a row of the
// previous version not yet adopted (its state is on the event row, for
// destination default).
const deliveryColumns = `e.event_id, e.event_type,
	COALESCE(d.destination, CASE WHEN e.status = 'routed' THEN '' ELSE 'default' END),
	COALESCE(d.status, CASE WHEN e.status = 'routed' THEN 'unrouted' ELSE e.status END),
	e.livemode, COALESCE(e.account, ''), COALESCE(e.api_version, ''), e.stripe_created, e.received_at,
	COALESCE(d.attempts, e.attempts),
	CASE WHEN d.event_id IS NOT NULL THEN d.next_attempt_at WHEN e.status <> 'routed' THEN e.next_attempt_at END,
	CASE WHEN d.event_id IS NOT NULL THEN d.locked_until WHEN e.status <> 'routed' THEN e.locked_until END,
	COALESCE(d.last_error, CASE WHEN e.status <> 'routed' THEN e.last_error END, ''),
	CASE WHEN d.event_id IS NOT NULL THEN d.delivered_at WHEN e.status <> 'routed' THEN e.delivered_at END,
	COALESCE(e.source, '')`

// collectEventRows reads rows of deliveryColumns.
func collectEventRows(rows pgx.Rows) ([]EventRow, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (EventRow, error) {
		var r EventRow
		err := row.Scan(&r.ID, &r.Type, &r.Destination, &r.Status, &r.Livemode, &r.Account, &r.APIVersion,
			&r.Created, &r.ReceivedAt, &r.Attempts, &r.NextAttemptAt, &r.LockedUntil, &r.LastError, &r.DeliveredAt, &r.Source)
		return r, err
	})
}

// typeLike turns a --type value into a LIKE pattern; empty matches all.
func typeLike(t string) string {
	if t == "" {
		return "%"
	}
	return route.Filter{Types: []string{t}}.LikePatterns()[0]
}

// ListEvents returns the newest rows matching f: one per delivery, and one
// per event that matched no destination.
func ListEvents(ctx context.Context, pool *pgxpool.Pool, f ListFilter) ([]EventRow, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var rows pgx.Rows
	var err error
	switch {
	case f.Status == StatusUnrouted && f.Destination != "":
		return nil, errors.New("listing events: an unrouted event has no destination")
	case f.Status == StatusUnrouted:
		rows, err = pool.Query(ctx, `SELECT `+deliveryColumns+` FROM stripe_webhook_events e
			LEFT JOIN stripe_webhook_deliveries d ON false
			WHERE e.status = 'routed' AND e.event_type LIKE $1 AND e.received_at >= $2
				AND NOT EXISTS (SELECT 1 FROM stripe_webhook_deliveries x WHERE x.event_id = e.event_id)
			ORDER BY e.received_at DESC, e.event_id LIMIT $3`, typeLike(f.Type), f.Since, f.Limit)
	case f.Status == StatusPending || f.Status == StatusDead:
		// Few rows: driven by the deliveries' partial indexes.
		rows, err = pool.Query(ctx, `SELECT `+deliveryColumns+` FROM stripe_webhook_deliveries d
			JOIN stripe_webhook_events e ON e.event_id = d.event_id
			WHERE d.status = $1 AND ($2 = '' OR d.destination = $2)
				AND e.event_type LIKE $3 AND d.received_at >= $4
			ORDER BY d.received_at DESC, d.event_id, d.destination LIMIT $5`,
			f.Status, f.Destination, typeLike(f.Type), f.Since, f.Limit)
	case f.Status != "" || f.Destination != "":
		// Delivered, or one destination's: most events have such a delivery,
		// so walk the ledger newest first and look each one's up by key.
		rows, err = pool.Query(ctx, `SELECT `+deliveryColumns+` FROM stripe_webhook_events e
			JOIN stripe_webhook_deliveries d ON d.event_id = e.event_id
			WHERE ($1 = '' OR d.status = $1) AND ($2 = '' OR d.destination = $2)
				AND e.event_type LIKE $3 AND e.received_at >= $4
			ORDER BY e.received_at DESC, e.event_id, d.destination LIMIT $5`,
			f.Status, f.Destination, typeLike(f.Type), f.Since, f.Limit)
	default:
		rows, err = pool.Query(ctx, `SELECT `+deliveryColumns+` FROM stripe_webhook_events e
			LEFT JOIN stripe_webhook_deliveries d ON d.event_id = e.event_id
			WHERE e.event_type LIKE $1 AND e.received_at >= $2
			ORDER BY e.received_at DESC, e.event_id, d.destination LIMIT $3`, typeLike(f.Type), f.Since, f.Limit)
	}
	if err != nil {
		return nil, fmt.Errorf("listing events: %w", err)
	}
	out, err := collectEventRows(rows)
	if err != nil {
		return nil, fmt.Errorf("listing events: %w", err)
	}
	return out, nil
}

// Event is one stored event with each destination's delivery and the
// history of attempts.
type Event struct {
	ID         string     `json:"id"`
	Type       string     `json:"type"`
	Livemode   bool       `json:"livemode"`
	Account    string     `json:"account,omitempty"`
	APIVersion string     `json:"api_version,omitempty"`
	Created    *time.Time `json:"created,omitempty"`
	ReceivedAt time.Time  `json:"received_at"`
	Source     string     `json:"source,omitempty"` // "reconcile", or empty for a webhook
	// Deliveries has one row per destination; an unrouted event has one
	// row with Status "unrouted".
	Deliveries []EventRow `json:"deliveries"`
	History    []Attempt  `json:"history"`
	// HistoryCut is set when History holds only the newest MaxHistory
	// attempts.
	HistoryCut bool   `json:"history_cut,omitempty"`
	Payload    []byte `json:"-"`
}

// MaxHistory bounds the attempts ShowEvent returns (the newest).
const MaxHistory = 1000

// ShowEvent returns one event, its deliveries, its raw payload and its
// delivery history.
func ShowEvent(ctx context.Context, pool *pgxpool.Pool, id string) (Event, error) {
	var ev Event
	rows, err := pool.Query(ctx, `SELECT `+deliveryColumns+` FROM stripe_webhook_events e
		LEFT JOIN stripe_webhook_deliveries d ON d.event_id = e.event_id
		WHERE e.event_id = $1 ORDER BY d.destination`, id)
	if err != nil {
		return ev, fmt.Errorf("reading %s: %w", id, err)
	}
	if ev.Deliveries, err = collectEventRows(rows); err != nil {
		return ev, fmt.Errorf("reading %s: %w", id, err)
	}
	if len(ev.Deliveries) == 0 {
		return ev, fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	first := ev.Deliveries[0]
	ev.ID, ev.Type, ev.Livemode, ev.Account, ev.APIVersion, ev.Created, ev.ReceivedAt, ev.Source =
		first.ID, first.Type, first.Livemode, first.Account, first.APIVersion, first.Created, first.ReceivedAt, first.Source
	if err := pool.QueryRow(ctx, `SELECT payload FROM stripe_webhook_events WHERE event_id = $1`, id).Scan(&ev.Payload); err != nil {
		return ev, fmt.Errorf("reading the payload of %s: %w", id, err)
	}
	hist, err := pool.Query(ctx, `SELECT * FROM (SELECT attempted_at, destination, ok, COALESCE(error, ''), instance
		FROM stripe_webhook_delivery_attempts WHERE event_id = $1 ORDER BY attempted_at DESC LIMIT $2) h
		ORDER BY attempted_at`, id, MaxHistory+1)
	if err != nil {
		return ev, fmt.Errorf("reading the history of %s: %w", id, err)
	}
	defer hist.Close()
	for hist.Next() {
		var a Attempt
		if err := hist.Scan(&a.At, &a.Destination, &a.OK, &a.Error, &a.Instance); err != nil {
			return ev, err
		}
		ev.History = append(ev.History, a)
	}
	if len(ev.History) > MaxHistory {
		ev.History, ev.HistoryCut = ev.History[1:], true
	}
	return ev, hist.Err()
}

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

// replayedIDs runs a replay statement that returns event ids.
func replayedIDs(ctx context.Context, pool *pgxpool.Pool, sql string, args ...any) ([]string, error) {
	rows, err := pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("replaying: %w", err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("replaying: %w", err)
	}
	return found, nil
}

// Replay puts the deliveries of the given events back to pending (only
// destination's, when it is set; then a delivery the event lacks is
// created) and returns the ids it found; the others do not exist.
func Replay(ctx context.Context, pool *pgxpool.Pool, ids []string, destination string) ([]string, error) {
	if destination == "" {
		return replayedIDs(ctx, pool, `WITH `+lockedIDs+`,
			r AS (
				UPDATE stripe_webhook_deliveries d SET `+replaySet+` FROM locked WHERE d.event_id = locked.event_id RETURNING d.event_id)
			SELECT DISTINCT event_id FROM r`, ids)
	}
	return replayedIDs(ctx, pool, `INSERT INTO stripe_webhook_deliveries AS d (event_id, destination, received_at)
		SELECT event_id, $2, received_at FROM stripe_webhook_events
		WHERE event_id = ANY($1::text[]) AND status = 'routed'
		ORDER BY event_id
		FOR KEY SHARE
		ON CONFLICT (event_id, destination) DO UPDATE SET `+replaySet+`
		RETURNING d.event_id`, ids, destination)
}

// ReplayStatus puts every delivery of status (of destination, when set)
// whose event was received since since back to pending and returns how
// many.
func ReplayStatus(ctx context.Context, pool *pgxpool.Pool, status string, since time.Time, destination string) (int64, error) {
	tag, err := pool.Exec(ctx, `WITH locked AS (
			SELECT e.event_id FROM stripe_webhook_events e
			WHERE e.event_id IN (SELECT event_id FROM stripe_webhook_deliveries
				WHERE status = $1 AND received_at >= $2 AND ($3 = '' OR destination = $3))
			ORDER BY e.event_id FOR KEY SHARE OF e)
		UPDATE stripe_webhook_deliveries d SET `+replaySet+`
		FROM locked
		WHERE d.event_id = locked.event_id AND d.status = $1 AND ($3 = '' OR d.destination = $3)`, status, since, destination)
	if err != nil {
		return 0, fmt.Errorf("replaying %s deliveries: %w", status, err)
	}
	return tag.RowsAffected(), nil
}

// Backfill gives destination a pending delivery of every event received
// since since that its filter matches and that it has none of, and
// returns how many: a destination added later receives only new events
// otherwise.
func Backfill(ctx context.Context, pool *pgxpool.Pool, destination string, f route.Filter, since time.Time) (int64, error) {
	tag, err := pool.Exec(ctx, `INSERT INTO stripe_webhook_deliveries (event_id, destination, received_at)
		SELECT event_id, $1, received_at FROM stripe_webhook_events
		WHERE received_at >= $2 AND status = 'routed' AND event_type LIKE ANY($3::text[])
			AND ($4::bool IS NULL OR livemode = $4)
		ORDER BY event_id
		FOR KEY SHARE
		ON CONFLICT (event_id, destination) DO NOTHING`, destination, since, f.LikePatterns(), f.LivemodeSQL())
	if err != nil {
		return 0, fmt.Errorf("backfilling %s: %w", destination, err)
	}
	return tag.RowsAffected(), nil
}

// DestinationStats is one destination's deliveries in Postgres.
type DestinationStats struct {
	Name      string `json:"name"`
	Pending   int64  `json:"pending"`
	Delivered int64  `json:"delivered"`
	Dead      int64  `json:"dead"`
	// OldestPendingSeconds is the age of the oldest pending delivery's event.
	OldestPendingSeconds float64 `json:"oldest_pending_seconds"`
}

// Stats counts every destination's deliveries (a scan of the deliveries
// table: for the command line, not for a metric).
func Stats(ctx context.Context, pool *pgxpool.Pool) ([]DestinationStats, error) {
	rows, err := pool.Query(ctx, `SELECT destination,
			count(*) FILTER (WHERE status = 'pending'),
			count(*) FILTER (WHERE status = 'delivered'),
			count(*) FILTER (WHERE status = 'dead'),
			COALESCE(extract(epoch FROM now() - min(received_at) FILTER (WHERE status = 'pending')), 0)::float8
		FROM stripe_webhook_deliveries GROUP BY destination ORDER BY destination`)
	if err != nil {
		return nil, fmt.Errorf("counting deliveries: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (DestinationStats, error) {
		var s DestinationStats
		err := row.Scan(&s.Name, &s.Pending, &s.Delivered, &s.Dead, &s.OldestPendingSeconds)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("counting deliveries: %w", err)
	}
	return out, nil
}

// PendingDestinations returns the destinations that have pending
// deliveries, one index probe per destination.
func PendingDestinations(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	rows, err := pool.Query(ctx, `WITH RECURSIVE `+distinctDestinations("pending", "n")+`
		SELECT destination FROM n WHERE destination IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("listing destinations with pending deliveries: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("listing destinations with pending deliveries: %w", err)
	}
	return names, nil
}
