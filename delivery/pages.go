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
const PageScanBudget = 1000

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
	Source     string     // "reconcile", or empty for a webhook
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
// most PageScanBudget index entries, shared between the destinations.
func EventsPage(ctx context.Context, pool *pgxpool.Pool, f PageFilter) (Page, error) {
	var p Page
	// No JIT: it costs tens of milliseconds to compile a plan that runs in
	// a few (the planner overestimates the bounded walks).
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL jit = off"); err != nil {
			return err
		}
		q, err := pageQueries(ctx, tx, f)
		if err != nil {
			return err
		}
		p, err = q.run(ctx, tx)
		if err != nil {
			return err
		}
		return fillDeliveries(ctx, tx, p.Events)
	})
	if err != nil {
		return Page{}, fmt.Errorf("listing events: %w", err)
	}
	return p, nil
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

// pageQueries builds the statements for f. For pending or dead
// deliveries of every destination it first lists the destinations that
// have some, one index probe each.
func pageQueries(ctx context.Context, q pgx.Tx, f PageFilter) (pageQuery, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	f.Limit = min(f.Limit, maxPageSize)
	at, until := f.After.At, f.Until
	if f.After.IsZero() {
		at = farFuture
	}
	if until.IsZero() {
		until = farFuture
	}
	args := pgx.NamedArgs{
		"at": at, "id": f.After.ID, "since": f.Since, "until": until, "type": likePrefix(f.TypePrefix),
		"status": f.Status, "dest": f.Destination, "budget": PageScanBudget, "want": f.Limit + 1,
	}
	switch f.Status {
	case StatusPending, StatusDead:
		dests := []string{f.Destination}
		if f.Destination == "" {
			rows, err := q.Query(ctx, `WITH RECURSIVE `+distinctDestinations(f.Status, "n")+`
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
		page, edge := deliveryQueries(f.Status)
		return pageQuery{page: page, edge: edge, args: args, limit: f.Limit, walks: len(dests)}, nil
	case "", StatusDelivered, StatusUnrouted:
	default:
		return pageQuery{}, fmt.Errorf("unknown status %q", f.Status)
	}
	if f.Status == StatusUnrouted && f.Destination != "" {
		return pageQuery{}, errors.New("an unrouted event has no destination")
	}
	page, edge := ledgerQueries(f)
	return pageQuery{page: page, edge: edge, args: args, limit: f.Limit, walks: 1}, nil
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
func ledgerQueries(f PageFilter) (page, edge string) {
	var join, match string
	switch {
	case f.Status == StatusUnrouted:
		join = ` LEFT JOIN LATERAL (SELECT true AS hit FROM stripe_webhook_deliveries d
			WHERE d.event_id = e.event_id LIMIT 1) m ON true`
		match = ` AND e.status = 'routed' AND m.hit IS NULL`
	case f.Status != "" || f.Destination != "":
		var cond []string
		if f.Status != "" {
			cond = append(cond, "d.status = @status")
		}
		if f.Destination != "" {
			cond = append(cond, "d.destination = @dest")
		}
		join = ` JOIN LATERAL (SELECT true AS hit FROM stripe_webhook_deliveries d
			WHERE d.event_id = e.event_id AND ` + strings.Join(cond, " AND ") + ` LIMIT 1) m ON true`
	}
	if f.TypePrefix != "" {
		match += ` AND e.event_type LIKE @type`
	}
	return `SELECT e.event_id, e.event_type, e.livemode, e.received_at, e.source
			FROM (` + ledgerScan + `) e` + join + ` WHERE true` + match + `
			ORDER BY e.received_at DESC, e.event_id COLLATE "C" DESC LIMIT @want`,
		`SELECT s.received_at, s.event_id FROM (
			SELECT s.received_at, s.event_id, count(*) OVER () AS n
			FROM (` + ledgerScan + `) s ORDER BY s.received_at, s.event_id COLLATE "C" LIMIT 1) s
		WHERE s.n >= @budget`
}

// distinctDestinations is a recursive CTE named name that lists the
// destinations with deliveries of status (a literal), one index probe per
// destination; its last row is NULL.
func distinctDestinations(status, name string) string {
	mustBeDeliveryStatus(status)
	return name + ` AS (
		(SELECT destination FROM stripe_webhook_deliveries WHERE status = '` + status + `' ORDER BY destination LIMIT 1)
		UNION ALL
		SELECT (SELECT destination FROM stripe_webhook_deliveries
			WHERE status = '` + status + `' AND destination > ` + name + `.destination ORDER BY destination LIMIT 1)
		FROM ` + name + ` WHERE ` + name + `.destination IS NOT NULL)`
}

// deliveryQueries page by pending or dead deliveries: per destination of
// @dests, the newest @want matches within the budget, merged. An event
// with matches at several destinations is listed once. The status is a
// literal, so that even a generic plan uses the partial index of that
// status.
func deliveryQueries(status string) (page, edge string) {
	mustBeDeliveryStatus(status)
	scan := `SELECT d.event_id, d.received_at FROM stripe_webhook_deliveries d
		WHERE d.destination = dn.destination AND d.status = '` + status + `' AND d.` + keyset + `
		ORDER BY d.received_at DESC, d.event_id COLLATE "C" DESC LIMIT @budget`
	return `SELECT DISTINCT h.event_id, h.event_type, h.livemode, h.received_at, h.source
		FROM unnest(@dests::text[]) AS dn(destination) CROSS JOIN LATERAL (
			SELECT e.event_id COLLATE "C" AS event_id, e.event_type, e.livemode, e.received_at, COALESCE(e.source, '') AS source
			FROM (` + scan + `) s JOIN stripe_webhook_events e ON e.event_id = s.event_id
			WHERE e.event_type LIKE @type
			ORDER BY s.received_at DESC, s.event_id COLLATE "C" DESC LIMIT @want) h
		ORDER BY h.received_at DESC, h.event_id DESC LIMIT @want`,
		`SELECT x.received_at, x.event_id FROM unnest(@dests::text[]) AS dn(destination) CROSS JOIN LATERAL (
			SELECT s.received_at, s.event_id, count(*) OVER () AS n
			FROM (` + scan + `) s ORDER BY s.received_at, s.event_id COLLATE "C" LIMIT 1) x
		WHERE x.n >= @budget`
}

// mustBeDeliveryStatus guards the statuses written into SQL as literals.
func mustBeDeliveryStatus(status string) {
	switch status {
	case StatusPending, StatusDelivered, StatusDead:
	default:
		panic("delivery: not a delivery status: " + status)
	}
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

// fillDeliveries reads the deliveries of the page's events.
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
		JOIN stripe_webhook_deliveries d ON d.event_id = e.event_id
		WHERE e.event_id = ANY($1) ORDER BY d.destination`, ids)
	if err != nil {
		return err
	}
	deliveries, err := collectEventRows(rows)
	for _, r := range deliveries {
		i := at[r.ID]
		events[i].Deliveries = append(events[i].Deliveries, r)
	}
	return err
}
