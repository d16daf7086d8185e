package store

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// EventRow is one delivery of a stored event, or an event that matched no
// destination (Status unrouted, no Destination).
type EventRow struct {
	ID            string     `json:"id"`
	Type          string     `json:"type"`
	Destination   string     `json:"destination,omitempty"`
	Status        Status     `json:"status"`
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
	// OrderKey is the delivery's order key at an ordered destination
	// ("" when it has none). Only ShowEvent reads it.
	OrderKey string `json:"order_key,omitempty"`
	// KeySkipped is set on a dead delivery with an order key: its key
	// went on past it, and the key's later events are delivered without
	// it. Only ShowEvent sets it.
	KeySkipped bool `json:"order_key_skipped,omitempty"`
}

// KeySkipNote says that the key of a dead ordered delivery skipped it;
// "" for any other delivery.
func (r EventRow) KeySkipNote() string {
	if !r.KeySkipped {
		return ""
	}
	return fmt.Sprintf("order key %q skipped it: the key's later events go on without it", r.OrderKey)
}

// Attempt is one entry of the delivery history.
type Attempt struct {
	At          time.Time `json:"at"`
	Destination string    `json:"destination"`
	OK          bool      `json:"ok"`
	Error       string    `json:"error,omitempty"`
	Instance    string    `json:"instance"`
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

// farFuture stands for "no upper bound" on received_at.
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// distinctDestinations is a recursive CTE named name that lists the
// destinations with deliveries of status (a literal), one index probe per
// destination; its last row is NULL.
func distinctDestinations(status Status, name string) string {
	mustBeDeliveryStatus(status)
	s := string(status)
	return name + ` AS (
		(SELECT destination FROM stripe_webhook_deliveries WHERE status = '` + s + `' ORDER BY destination LIMIT 1)
		UNION ALL
		SELECT (SELECT destination FROM stripe_webhook_deliveries
			WHERE status = '` + s + `' AND destination > ` + name + `.destination ORDER BY destination LIMIT 1)
		FROM ` + name + ` WHERE ` + name + `.destination IS NOT NULL)`
}

// mustBeDeliveryStatus guards the statuses written into SQL as literals.
func mustBeDeliveryStatus(status Status) {
	switch status {
	case StatusPending, StatusDelivered, StatusDead:
	default:
		panic("store: not a delivery status: " + string(status))
	}
}
