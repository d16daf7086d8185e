package store

import (
	"context"
	"fmt"
	"time"
)

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
	// row with Status unrouted.
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
// delivery history; ErrNotFound when there is no such event.
func (s *Store) ShowEvent(ctx context.Context, id string) (Event, error) {
	var ev Event
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM stripe_webhook_events e
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
	if err := s.readOrderKeys(ctx, &ev); err != nil {
		return ev, err
	}
	if err := s.pool.QueryRow(ctx, `SELECT payload FROM stripe_webhook_events WHERE event_id = $1`, id).Scan(&ev.Payload); err != nil {
		return ev, fmt.Errorf("reading the payload of %s: %w", id, err)
	}
	hist, err := s.pool.Query(ctx, `SELECT * FROM (SELECT attempted_at, destination, ok, COALESCE(error, ''), instance
		FROM stripe_webhook_delivery_attempts WHERE event_id = $1 ORDER BY attempted_at DESC LIMIT $2) h
		ORDER BY attempted_at`, id, MaxHistory+1)
	if err != nil {
		return ev, fmt.Errorf("reading the history of %s: %w", id, err)
	}
	defer hist.Close()
	for hist.Next() {
		var a Attempt
		if err := hist.Scan(&a.At, &a.Destination, &a.OK, &a.Error, &a.Instance); err != nil {
			return ev, fmt.Errorf("reading the history of %s: %w", id, err)
		}
		ev.History = append(ev.History, a)
	}
	if len(ev.History) > MaxHistory {
		ev.History, ev.HistoryCut = ev.History[1:], true
	}
	if err := hist.Err(); err != nil {
		return ev, fmt.Errorf("reading the history of %s: %w", id, err)
	}
	return ev, nil
}

// readOrderKeys fills the order key of ev's deliveries at ordered
// destinations, and marks the dead ones as skipped by their key.
func (s *Store) readOrderKeys(ctx context.Context, ev *Event) error {
	rows, err := s.pool.Query(ctx, `SELECT destination, order_key FROM stripe_webhook_deliveries
		WHERE event_id = $1 AND order_key IS NOT NULL`, ev.ID)
	if err != nil {
		return fmt.Errorf("reading the order keys of %s: %w", ev.ID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var dest, key string
		if err := rows.Scan(&dest, &key); err != nil {
			return fmt.Errorf("reading the order keys of %s: %w", ev.ID, err)
		}
		for i := range ev.Deliveries {
			if d := &ev.Deliveries[i]; d.Destination == dest {
				d.OrderKey, d.KeySkipped = key, d.Status == StatusDead
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading the order keys of %s: %w", ev.ID, err)
	}
	return nil
}
