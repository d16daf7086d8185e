package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/route"
)

// insertEventsSQL stores one batch: each new event's ledger row, written
// once, and one delivery row per destination it matches, in one statement
// and so one transaction. Rows go in event_id order, so that batches from
// several instances take row locks in the same order. It returns the new
// ids and their lease: every new delivery is leased to the caller ($8
// ms), and no sweeper claims it before then. The lease of a delivery with
// an order key is only held: the caller delivers it once ClaimArrivals
// finds that it may, which keeps its key's order.
// $1..$7 and $11 the events, $8 lease ms, $9/$10/$12/$13 (event id,
// destination, order key or "", created) per delivery.
const insertEventsSQL = `
WITH ins AS (
	INSERT INTO stripe_webhook_events
		(event_id, event_type, livemode, account, api_version, stripe_created, payload, status, source)
	SELECT e.id, e.type, e.livemode, NULLIF(e.account, ''), NULLIF(e.api_version, ''), e.created, e.payload, '` + ledgerRouted + `',
		NULLIF(e.source, '')
	FROM unnest($1::text[], $2::text[], $3::bool[], $4::text[], $5::text[], $6::timestamptz[], $7::bytea[], $11::text[])
		AS e(id, type, livemode, account, api_version, created, payload, source)
	ORDER BY e.id
	ON CONFLICT (event_id) DO NOTHING
	RETURNING event_id),
routed AS (
	INSERT INTO stripe_webhook_deliveries (event_id, destination, order_key, order_created, locked_until, next_attempt_at)
	SELECT r.id, r.destination, NULLIF(r.key, ''), r.created,
		now() + $8::bigint * interval '1 millisecond', now() + $8::bigint * interval '1 millisecond'
	FROM unnest($9::text[], $10::text[], $12::text[], $13::timestamptz[]) AS r(id, destination, key, created)
	WHERE r.id IN (SELECT event_id FROM ins)
	ORDER BY r.id, r.destination)
SELECT event_id, now() + $8::bigint * interval '1 millisecond' FROM ins`

// EventBatch holds the columns of one InsertEvents, reused from batch to
// batch so that the group commit allocates nothing once warm. Events are
// added in event_id order, without repeats.
type EventBatch struct {
	ids, types, accounts, versions, sources []string
	livemodes                               []bool
	created                                 []pgtype.Timestamptz
	payloads                                [][]byte
	routeIDs, routeDests, routeKeys         []string // one (event id, destination, order key) per delivery row
	routeCreated                            []pgtype.Timestamptz
	inserted                                []Inserted
}

// Inserted is one event that InsertEvents stored, with the lease of its
// new deliveries: the locked_until token their results must carry.
type Inserted struct {
	ID    string
	Lease time.Time
}

// Reset empties b, keeping its memory.
func (b *EventBatch) Reset() {
	b.ids, b.types, b.accounts, b.versions, b.sources = b.ids[:0], b.types[:0], b.accounts[:0], b.versions[:0], b.sources[:0]
	b.livemodes, b.created, b.payloads = b.livemodes[:0], b.created[:0], b.payloads[:0]
	b.routeIDs, b.routeDests, b.routeKeys, b.routeCreated = b.routeIDs[:0], b.routeDests[:0], b.routeKeys[:0], b.routeCreated[:0]
}

// Len is the number of events in b.
func (b *EventBatch) Len() int { return len(b.ids) }

// Add puts ev in b with a pending delivery to each destination of routes
// it matches, with ev's order key there, and returns how many it matches.
func (b *EventBatch) Add(ev *event.Event, routes *route.Table) int {
	b.ids = append(b.ids, ev.ID)
	b.types = append(b.types, ev.Type)
	b.livemodes = append(b.livemodes, ev.Livemode)
	b.accounts = append(b.accounts, ev.Account)
	b.versions = append(b.versions, ev.APIVersion)
	created := pgtype.Timestamptz{Time: ev.Created, Valid: !ev.Created.IsZero()}
	b.created = append(b.created, created)
	b.payloads = append(b.payloads, ev.Payload)
	b.sources = append(b.sources, ev.Source)
	n := len(b.routeDests)
	b.routeDests, b.routeKeys = routes.MatchKeys(b.routeDests, b.routeKeys, ev)
	matched := len(b.routeDests) - n
	for range matched {
		b.routeIDs = append(b.routeIDs, ev.ID)
		b.routeCreated = append(b.routeCreated, created)
	}
	return matched
}

// InsertEvents stores the events of b that the ledger lacks, each with its
// deliveries leased to the caller for lease, in one statement. It returns
// the events it stored, sorted by id, in memory b reuses: a row not
// returned was already in the ledger. The slice is valid until b is next
// used.
func (s *Store) InsertEvents(ctx context.Context, b *EventBatch, lease time.Duration) ([]Inserted, error) {
	rows, err := s.pool.Query(ctx, insertEventsSQL, b.ids, b.types, b.livemodes, b.accounts, b.versions, b.created, b.payloads,
		lease.Milliseconds(), b.routeIDs, b.routeDests, b.sources, b.routeKeys, b.routeCreated)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	b.inserted = b.inserted[:0]
	for rows.Next() {
		var in Inserted
		if err := rows.Scan(&in.ID, &in.Lease); err != nil {
			return nil, err
		}
		b.inserted = append(b.inserted, in)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(b.inserted, func(x, y Inserted) int { return strings.Compare(x.ID, y.ID) })
	return b.inserted, nil
}

// StoredEvents returns which of ids the ledger holds.
func (s *Store) StoredEvents(ctx context.Context, ids []string) (map[string]bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT event_id FROM stripe_webhook_events WHERE event_id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("looking events up in the ledger: %w", err)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("looking events up in the ledger: %w", err)
	}
	stored := make(map[string]bool, len(have))
	for _, id := range have {
		stored[id] = true
	}
	return stored, nil
}
