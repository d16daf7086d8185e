package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/oncehook/oncehook/route"
)

// PageScanBudget bounds the index entries one page walks, whatever its
// filters: a filter that matches few rows ends a page early, with a cursor
// to go on from, instead of walking a whole ledger.
const PageScanBudget = 1000

// MaxPageSize bounds the events on one page.
const MaxPageSize = 200

// DefaultPageSize is the events on a page when ListParams.Limit is 0.
const DefaultPageSize = 50

// Cursor is a keyset position: the next page holds events received before
// At, or at At with an event id before ID (newest first).
type Cursor struct {
	At time.Time
	ID string
}

// IsZero reports whether c is the start, before the newest event.
func (c Cursor) IsZero() bool { return c.At.IsZero() && c.ID == "" }

// ListParams selects a page of events; zero fields match everything. It is
// the one filter of every listing (the CLI's and the console's).
type ListParams struct {
	// Status is a delivery status (pending, delivered, dead): events with
	// such a delivery (at Destination, when set); or unrouted: events that
	// matched no destination.
	Status Status
	// Destination selects events with a delivery to it.
	Destination string
	// Types are event type patterns, as a destination's filter takes them
	// (invoice.paid, invoice.*, *): the event's type matches one of them.
	// Empty matches every type.
	Types []string
	// Livemode, when set, selects live (true) or test (false) events.
	Livemode *bool
	// Since and Until bound received_at: at or after Since, before Until.
	Since, Until time.Time
	// After is where the page starts; zero: the newest page.
	After Cursor
	// Limit is the events per page. Defaults to DefaultPageSize, at most
	// MaxPageSize.
	Limit int
}

// Validate reports what is wrong with p.
func (p ListParams) Validate() error {
	switch p.Status {
	case "", StatusPending, StatusDelivered, StatusDead, StatusUnrouted:
	default:
		return fmt.Errorf("status %q is none of pending, delivered, dead, unrouted", p.Status)
	}
	if p.Status == StatusUnrouted && p.Destination != "" {
		return errors.New("an unrouted event has no destination")
	}
	for _, t := range p.Types {
		if err := route.ValidPattern(t); err != nil {
			return err
		}
	}
	return nil
}

// PageEvent is one event of a page with all its deliveries.
type PageEvent struct {
	ID         string     `json:"id"`
	Type       string     `json:"type"`
	Livemode   bool       `json:"livemode"`
	ReceivedAt time.Time  `json:"received_at"`
	Source     string     `json:"source,omitempty"` // "reconcile", or empty for a webhook
	Deliveries []EventRow `json:"deliveries"`       // by destination; empty for an unrouted event
	// Unrouted is the event's row when it matched no destination (Status
	// StatusUnrouted, no Destination): what a listing of one row per
	// delivery shows for it.
	Unrouted *EventRow `json:"-"`
}

// Page is one page of events, newest first.
type Page struct {
	Events []PageEvent
	// Next is where the next page starts; nil when there is none.
	Next *Cursor
	// Partial is set when the scan budget ended the page before it was
	// full: older events may still match.
	Partial bool
}

// ListEvents returns a page of events matching p, newest first, by keyset
// on (received_at, event_id). Pending and dead deliveries are found
// through their partial indexes, one destination at a time; everything
// else walks the ledger's received_at index. Either way a page reads at
// most PageScanBudget index entries, shared between the destinations.
func (s *Store) ListEvents(ctx context.Context, p ListParams) (Page, error) {
	if err := p.Validate(); err != nil {
		return Page{}, fmt.Errorf("listing events: %w", err)
	}
	var out Page
	// No JIT: it costs tens of milliseconds to compile a plan that runs in
	// a few (the planner overestimates the bounded walks).
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL jit = off"); err != nil {
			return err
		}
		q, err := pageQueries(ctx, tx, p)
		if err != nil {
			return err
		}
		out, err = q.run(ctx, tx)
		if err != nil {
			return err
		}
		return fillDeliveries(ctx, tx, out.Events)
	})
	if err != nil {
		return Page{}, fmt.Errorf("listing events: %w", err)
	}
	return out, nil
}

// PageQueries returns the statements and arguments that ListEvents runs
// for p, for the query plan tests.
func (s *Store) PageQueries(ctx context.Context, p ListParams) (page, edge string, args pgx.NamedArgs, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q, err := pageQueries(ctx, tx, p)
		page, edge, args = q.page, q.edge, q.args
		return err
	})
	return page, edge, args, err
}

// pageQuery is one page's statements: the matches (up to @want), and,
// for a short page, where the walk stopped (edge).
type pageQuery struct {
	page, edge string
	args       pgx.NamedArgs
	limit      int
	// walks is how many walks the page merges: one per destination for
	// pending and dead deliveries, else one (the ledger).
	walks int
}

// eventMatch is the conditions on the event e that p sets beyond the
// keyset: its type and its mode.
func eventMatch(p ListParams) string {
	var m string
	if len(p.Types) > 0 {
		m += ` AND e.event_type LIKE ANY(@types::text[])`
	}
	if p.Livemode != nil {
		m += ` AND e.livemode = @livemode`
	}
	return m
}

// pageQueries builds the statements for p. For pending or dead
// deliveries of every destination it first lists the destinations that
// have some, one index probe each.
func pageQueries(ctx context.Context, q pgx.Tx, p ListParams) (pageQuery, error) {
	if p.Limit <= 0 {
		p.Limit = DefaultPageSize
	}
	p.Limit = min(p.Limit, MaxPageSize)
	at, until := p.After.At, p.Until
	if p.After.IsZero() {
		at = farFuture
	}
	if until.IsZero() {
		until = farFuture
	}
	args := pgx.NamedArgs{
		"at": at, "id": p.After.ID, "since": p.Since, "until": until,
		"types": route.Filter{Types: p.Types}.LikePatterns(), "livemode": p.Livemode,
		"status": string(p.Status), "dest": p.Destination, "budget": PageScanBudget, "want": p.Limit + 1,
	}
	switch p.Status {
	case StatusPending, StatusDead:
		dests := []string{p.Destination}
		if p.Destination == "" {
			rows, err := q.Query(ctx, `WITH RECURSIVE `+distinctDestinations(p.Status, "n")+`
				SELECT destination FROM n WHERE destination IS NOT NULL`)
			if err != nil {
				return pageQuery{}, err
			}
			if dests, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
				return pageQuery{}, err
			}
		}
		args["dests"] = dests
		args["budget"] = max(20, PageScanBudget/max(1, len(dests)))
		page, edge := deliveryQueries(p)
		return pageQuery{page: page, edge: edge, args: args, limit: p.Limit, walks: len(dests)}, nil
	}
	page, edge := ledgerQueries(p)
	return pageQuery{page: page, edge: edge, args: args, limit: p.Limit, walks: 1}, nil
}

// run reads the page. A walk that reached its budget stopped at its last
// row, and every row above the latest of those stops (the edge) has been
// read by every walk; matches below it are left to the next page, which
// starts there. With one walk, a full page needs no edge: the walk read
// every row down to the page's last.
func (q pageQuery) run(ctx context.Context, tx pgx.Tx) (Page, error) {
	rows, err := tx.Query(ctx, q.page, q.args)
	if err != nil {
		return Page{}, err
	}
	hits, err := collectPageEvents(rows)
	if err != nil {
		return Page{}, err
	}
	var edge *Cursor
	if len(hits) <= q.limit || q.walks > 1 {
		if edge, err = q.edgeOf(ctx, tx); err != nil {
			return Page{}, err
		}
	}
	if edge != nil {
		keep := hits[:0]
		for _, h := range hits {
			if !after(*edge, Cursor{At: h.ReceivedAt, ID: h.ID}) {
				keep = append(keep, h)
			}
		}
		hits = keep
	}
	var p Page
	switch {
	case len(hits) > q.limit:
		p.Events = hits[:q.limit]
		last := p.Events[q.limit-1]
		p.Next = &Cursor{At: last.ReceivedAt, ID: last.ID}
	case edge != nil:
		p.Events, p.Next, p.Partial = hits, edge, true
	default:
		p.Events = hits
	}
	return p, nil
}

// edgeOf returns the latest stop of the walks that reached their budget,
// or nil when none did.
func (q pageQuery) edgeOf(ctx context.Context, tx pgx.Tx) (*Cursor, error) {
	rows, err := tx.Query(ctx, q.edge, q.args)
	if err != nil {
		return nil, err
	}
	stops, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Cursor, error) {
		var c Cursor
		return c, r.Scan(&c.At, &c.ID)
	})
	if err != nil || len(stops) == 0 {
		return nil, err
	}
	sort.Slice(stops, func(i, j int) bool { return after(stops[i], stops[j]) })
	return &stops[0], nil
}

// keyset is the page condition on a table with received_at and event_id,
// written so that the received_at indexes bound the scan. Event ids are
// compared bytewise (COLLATE "C"), in SQL as in Go (after), whatever the
// database's collation: ties on received_at are common (a batch shares
// its now()).
const keyset = `received_at <= @at AND (received_at < @at OR event_id COLLATE "C" < @id)
	AND received_at >= @since AND received_at < @until`

// ledgerScan walks the ledger newest first within the budget. It is lazy:
// the filters above it stop it as soon as a page is full.
const ledgerScan = `SELECT event_id, received_at, event_type, livemode, status, COALESCE(source, '') AS source FROM stripe_webhook_events
	WHERE ` + keyset + ` ORDER BY received_at DESC, event_id COLLATE "C" DESC LIMIT @budget`

// ledgerQueries page by the ledger: every event, delivered ones, one
// destination's, or unrouted ones. A delivery is looked up by key with
// LIMIT 1 for each event walked (never a hashed subplan, which would read
// every delivery).
func ledgerQueries(p ListParams) (page, edge string) {
	var join, match string
	switch {
	case p.Status == StatusUnrouted:
		join = ` LEFT JOIN LATERAL (SELECT true AS hit FROM stripe_webhook_deliveries d
			WHERE d.event_id = e.event_id LIMIT 1) m ON true`
		match = ` AND e.status = 'routed' AND m.hit IS NULL`
	case p.Status != "" || p.Destination != "":
		var cond []string
		if p.Status != "" {
			cond = append(cond, "d.status = @status")
		}
		if p.Destination != "" {
			cond = append(cond, "d.destination = @dest")
		}
		join = ` JOIN LATERAL (SELECT true AS hit FROM stripe_webhook_deliveries d
			WHERE d.event_id = e.event_id AND ` + strings.Join(cond, " AND ") + ` LIMIT 1) m ON true`
	}
	match += eventMatch(p)
	return `SELECT e.event_id, e.event_type, e.livemode, e.received_at, e.source
			FROM (` + ledgerScan + `) e` + join + ` WHERE true` + match + `
			ORDER BY e.received_at DESC, e.event_id COLLATE "C" DESC LIMIT @want`,
		`SELECT s.received_at, s.event_id FROM (
			SELECT s.received_at, s.event_id, count(*) OVER () AS n
			FROM (` + ledgerScan + `) s ORDER BY s.received_at, s.event_id COLLATE "C" LIMIT 1) s
		WHERE s.n >= @budget`
}

// deliveryQueries page by pending or dead deliveries: per destination of
// @dests, the newest @want matches within the budget, merged. An event
// with matches at several destinations is listed once. The status is a
// literal, so that even a generic plan uses the partial index of that
// status.
func deliveryQueries(p ListParams) (page, edge string) {
	mustBeDeliveryStatus(p.Status)
	scan := `SELECT d.event_id, d.received_at FROM stripe_webhook_deliveries d
		WHERE d.destination = dn.destination AND d.status = '` + string(p.Status) + `' AND d.` + keyset + `
		ORDER BY d.received_at DESC, d.event_id COLLATE "C" DESC LIMIT @budget`
	return `SELECT DISTINCT h.event_id, h.event_type, h.livemode, h.received_at, h.source
		FROM unnest(@dests::text[]) AS dn(destination) CROSS JOIN LATERAL (
			SELECT e.event_id COLLATE "C" AS event_id, e.event_type, e.livemode, e.received_at, COALESCE(e.source, '') AS source
			FROM (` + scan + `) s JOIN stripe_webhook_events e ON e.event_id = s.event_id
			WHERE true` + eventMatch(p) + `
			ORDER BY s.received_at DESC, s.event_id COLLATE "C" DESC LIMIT @want) h
		ORDER BY h.received_at DESC, h.event_id DESC LIMIT @want`,
		`SELECT x.received_at, x.event_id FROM unnest(@dests::text[]) AS dn(destination) CROSS JOIN LATERAL (
			SELECT s.received_at, s.event_id, count(*) OVER () AS n
			FROM (` + scan + `) s ORDER BY s.received_at, s.event_id COLLATE "C" LIMIT 1) x
		WHERE x.n >= @budget`
}

// after reports whether a comes before b in a page (is newer).
func after(a, b Cursor) bool {
	if !a.At.Equal(b.At) {
		return a.At.After(b.At)
	}
	return a.ID > b.ID
}

func collectPageEvents(rows pgx.Rows) ([]PageEvent, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (PageEvent, error) {
		var e PageEvent
		return e, r.Scan(&e.ID, &e.Type, &e.Livemode, &e.ReceivedAt, &e.Source)
	})
}

// fillDeliveries reads the deliveries of the page's events; a row of the
// previous version not yet adopted reads as its one delivery, to default.
func fillDeliveries(ctx context.Context, tx pgx.Tx, events []PageEvent) error {
	if len(events) == 0 {
		return nil
	}
	ids := make([]string, len(events))
	at := make(map[string]int, len(events))
	for i, e := range events {
		ids[i] = e.ID
		at[e.ID] = i
	}
	rows, err := tx.Query(ctx, `SELECT `+deliveryColumns+` FROM stripe_webhook_events e
		LEFT JOIN stripe_webhook_deliveries d ON d.event_id = e.event_id
		WHERE e.event_id = ANY($1) ORDER BY 3`, ids)
	if err != nil {
		return err
	}
	deliveries, err := collectEventRows(rows)
	for _, r := range deliveries {
		i := at[r.ID]
		if r.Status == StatusUnrouted {
			events[i].Unrouted = &r
			continue
		}
		events[i].Deliveries = append(events[i].Deliveries, r)
	}
	return err
}
