package delivery

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PageScanBudget bounds the index entries one page walks, whatever its
// filters: a filter that matches few rows ends a page early, with a cursor
// to go on from, instead of walking a whole ledger.
const PageScanBudget = 5000

// maxPageSize bounds the events on one page.
const maxPageSize = 200

// Cursor is a keyset position: the next page holds events received before
// At, or at At with an event id before ID (newest first).
type Cursor struct {
	At time.Time
	ID string
}

// IsZero reports whether c is the start, before the newest event.
func (c Cursor) IsZero() bool { return c.At.IsZero() && c.ID == "" }

// PageFilter selects a page of events; zero fields match everything.
type PageFilter struct {
	Status      string // a delivery status (pending, delivered, dead) or unrouted
	Destination string // has a delivery to this destination
	TypePrefix  string // the event type starts with it
	Since       time.Time
	Until       time.Time // received before it
	After       Cursor    // zero: the newest page
	Limit       int       // events per page; defaults to 50, at most 200
}

// PageEvent is one event of a page with all its deliveries.
type PageEvent struct {
	ID         string
	Type       string
	Livemode   bool
	ReceivedAt time.Time
	Deliveries []EventRow // by destination; empty for an unrouted event
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

// farFuture stands for "no upper bound" on received_at.
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// likePrefix escapes prefix for LIKE and appends the wildcard.
func likePrefix(prefix string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(prefix) + "%"
}

// EventsPage returns a page of events matching f, newest first, by keyset
// on (received_at, event_id). Pending and dead deliveries are found
// through their partial indexes, one destination at a time; everything
// else walks the ledger's received_at index. Either way a page reads at
// most PageScanBudget index entries per destination.
func EventsPage(ctx context.Context, pool *pgxpool.Pool, f PageFilter) (Page, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	f.Limit = min(f.Limit, maxPageSize)
	switch f.Status {
	case "", StatusPending, StatusDelivered, StatusDead, StatusUnrouted:
	default:
		return Page{}, fmt.Errorf("listing events: unknown status %q", f.Status)
	}
	if f.Status == StatusUnrouted && f.Destination != "" {
		return Page{}, errors.New("listing events: an unrouted event has no destination")
	}
	args := pageArgs(f)
	var hits []PageEvent
	var edge *Cursor
	var err error
	if f.Status == StatusPending || f.Status == StatusDead {
		hits, edge, err = deliveryPage(ctx, pool, f.Status, args)
	} else {
		hits, edge, err = ledgerPage(ctx, pool, args)
	}
	if err != nil {
		return Page{}, fmt.Errorf("listing events: %w", err)
	}
	var p Page
	switch {
	case len(hits) > f.Limit:
		hits = hits[:f.Limit]
		last := hits[len(hits)-1]
		p.Next = &Cursor{At: last.ReceivedAt, ID: last.ID}
	case edge != nil:
		p.Next, p.Partial = edge, true
	}
	p.Events = hits
	if err := fillDeliveries(ctx, pool, p.Events); err != nil {
		return Page{}, fmt.Errorf("listing events: %w", err)
	}
	return p, nil
}

// pageArgs are the named arguments of pageQueries for f.
func pageArgs(f PageFilter) pgx.NamedArgs {
	at, until := f.After.At, f.Until
	if f.After.IsZero() {
		at = farFuture
	}
	if until.IsZero() {
		until = farFuture
	}
	return pgx.NamedArgs{
		"at": at, "id": f.After.ID, "since": f.Since, "until": until, "type": likePrefix(f.TypePrefix),
		"status": f.Status, "dest": f.Destination, "budget": PageScanBudget, "want": f.Limit + 1,
	}
}

// keyset is the page condition on a table with received_at and event_id,
// written so that the received_at indexes bound the scan.
const keyset = `received_at <= @at AND (received_at < @at OR event_id < @id)
	AND received_at >= @since AND received_at < @until`

// ledgerScan walks the ledger newest first within the budget. It is lazy:
// the filters above it stop it as soon as a page is full.
const ledgerScan = `SELECT event_id, received_at, event_type, livemode, status FROM stripe_webhook_events
	WHERE ` + keyset + ` ORDER BY received_at DESC, event_id DESC LIMIT @budget`

// ledgerMatch is the filter on one scanned ledger row e.
const ledgerMatch = `e.event_type LIKE @type AND CASE
	WHEN @status = 'unrouted' THEN e.status = 'routed'
		AND NOT EXISTS (SELECT 1 FROM stripe_webhook_deliveries d WHERE d.event_id = e.event_id)
	WHEN @status = '' AND @dest = '' THEN true
	ELSE EXISTS (SELECT 1 FROM stripe_webhook_deliveries d WHERE d.event_id = e.event_id
		AND (@status = '' OR d.status = @status) AND (@dest = '' OR d.destination = @dest)) END`

// pageQueries returns the statements that page by status: the page's
// matches (up to @want), and, for a short page, where the scan stopped.
func pageQueries(status string) (page, edge string) {
	if status != StatusPending && status != StatusDead {
		return `SELECT e.event_id, e.event_type, e.livemode, e.received_at
			FROM (` + ledgerScan + `) e WHERE ` + ledgerMatch + `
			ORDER BY e.received_at DESC, e.event_id DESC LIMIT @want`,
			`SELECT s.received_at, s.event_id, count(*) OVER ()
			FROM (` + ledgerScan + `) s ORDER BY s.received_at, s.event_id LIMIT 1`
	}
	// The status is a literal, so that even a generic plan uses the
	// partial index of that status.
	scan := strings.ReplaceAll(deliveryScan, "@status", "'"+status+"'")
	return destinationsWith(status) + `
		SELECT DISTINCT h.event_id, h.event_type, h.livemode, h.received_at FROM dn CROSS JOIN LATERAL (
			SELECT e.event_id, e.event_type, e.livemode, e.received_at
			FROM (` + scan + `) s JOIN stripe_webhook_events e ON e.event_id = s.event_id
			WHERE e.event_type LIKE @type
			ORDER BY s.received_at DESC, s.event_id DESC LIMIT @want) h
		ORDER BY h.received_at DESC, h.event_id DESC LIMIT @want`,
		destinationsWith(status) + `
		SELECT x.received_at, x.event_id, x.n FROM dn CROSS JOIN LATERAL (
			SELECT s.received_at, s.event_id, count(*) OVER () AS n
			FROM (` + scan + `) s ORDER BY s.received_at, s.event_id LIMIT 1) x
		WHERE x.n >= @budget`
}

// ledgerPage pages by the ledger: every event, delivered ones, one
// destination's, or unrouted ones.
func ledgerPage(ctx context.Context, pool *pgxpool.Pool, args pgx.NamedArgs) ([]PageEvent, *Cursor, error) {
	page, edgeSQL := pageQueries(StatusDelivered)
	rows, err := pool.Query(ctx, page, args)
	if err != nil {
		return nil, nil, err
	}
	hits, err := collectPageEvents(rows)
	if err != nil || len(hits) == args["want"] {
		return hits, nil, err
	}
	// Short page: the walk ended at the budget (then go on from its last
	// row) or at the oldest event.
	var edge Cursor
	var n int
	err = pool.QueryRow(ctx, edgeSQL, args).Scan(&edge.At, &edge.ID, &n)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && n < PageScanBudget) {
		return hits, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return hits, &edge, nil
}

// distinctDestinations is a recursive CTE named name that lists the
// destinations with deliveries of status (a literal), one index probe per
// destination; its last row is NULL.
func distinctDestinations(status, name string) string {
	return name + ` AS (
		(SELECT destination FROM stripe_webhook_deliveries WHERE status = '` + status + `' ORDER BY destination LIMIT 1)
		UNION ALL
		SELECT (SELECT destination FROM stripe_webhook_deliveries
			WHERE status = '` + status + `' AND destination > ` + name + `.destination ORDER BY destination LIMIT 1)
		FROM ` + name + ` WHERE ` + name + `.destination IS NOT NULL)`
}

// destinationsWith names dn the destinations to page: @dest, or every one
// with deliveries of status.
func destinationsWith(status string) string {
	return `WITH RECURSIVE ` + distinctDestinations(status, "n") + `,
	dn AS (SELECT destination FROM n WHERE destination IS NOT NULL AND @dest = ''
		UNION ALL SELECT @dest WHERE @dest <> '')`
}

// deliveryScan walks one destination's (dn) deliveries of @status newest
// first within the budget, through the partial index of that status.
const deliveryScan = `SELECT d.event_id, d.received_at FROM stripe_webhook_deliveries d
	WHERE d.destination = dn.destination AND d.status = @status AND d.` + keyset + `
	ORDER BY d.received_at DESC, d.event_id DESC LIMIT @budget`

// deliveryPage pages by pending or dead deliveries: per destination, the
// newest @want matches within the budget, merged. An event with matches
// at several destinations is listed once.
func deliveryPage(ctx context.Context, pool *pgxpool.Pool, status string, args pgx.NamedArgs) ([]PageEvent, *Cursor, error) {
	page, edgeSQL := pageQueries(status)
	rows, err := pool.Query(ctx, page, args)
	if err != nil {
		return nil, nil, err
	}
	hits, err := collectPageEvents(rows)
	if err != nil || len(hits) == args["want"] {
		return hits, nil, err
	}
	// Short page: each destination's walk that reached the budget stopped
	// at its last row; every row newer than the latest of those stops has
	// been seen at every destination.
	rows, err = pool.Query(ctx, edgeSQL, args)
	if err != nil {
		return nil, nil, err
	}
	stops, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Cursor, error) {
		var c Cursor
		var n int
		return c, r.Scan(&c.At, &c.ID, &n)
	})
	if err != nil || len(stops) == 0 {
		return hits, nil, err
	}
	sort.Slice(stops, func(i, j int) bool { return after(stops[i], stops[j]) })
	edge := stops[0]
	// Keep only hits at or above the edge: below it, a destination whose
	// walk stopped at the edge has not been read, and the next page starts
	// below it.
	keep := hits[:0]
	for _, h := range hits {
		if !after(edge, Cursor{At: h.ReceivedAt, ID: h.ID}) {
			keep = append(keep, h)
		}
	}
	return keep, &edge, nil
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
		return e, r.Scan(&e.ID, &e.Type, &e.Livemode, &e.ReceivedAt)
	})
}

// fillDeliveries reads the deliveries of the page's events.
func fillDeliveries(ctx context.Context, pool *pgxpool.Pool, events []PageEvent) error {
	if len(events) == 0 {
		return nil
	}
	ids := make([]string, len(events))
	at := make(map[string]int, len(events))
	for i, e := range events {
		ids[i] = e.ID
		at[e.ID] = i
	}
	rows, err := pool.Query(ctx, `SELECT `+deliveryColumns+` FROM stripe_webhook_events e
		JOIN stripe_webhook_deliveries d ON d.event_id = e.event_id
		WHERE e.event_id = ANY($1) ORDER BY d.destination`, ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var r EventRow
		if err := scanRow(rows, &r); err != nil {
			return err
		}
		i := at[r.ID]
		events[i].Deliveries = append(events[i].Deliveries, r)
	}
	return rows.Err()
}
