package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// A keyed delivery is stored under the same lease as an unordered one
// (InsertEvents), but that lease is only held for it: the instance that
// stored it may deliver it once ClaimArrivals has found that it is its
// key's one pending delivery (aloneArrivalsSQL, with no lock), or, under
// the key's lock, that it is the key's head and that no other delivery of
// the key is leased. Most arrivals find their key idle and go without
// another write. One that does not go is released (due at once, under no lease)
// and goes by the claim's rule: after the delivery in flight (its result
// hands the key's next head over), or by a later arrival or sweep.
//
// A held lease counts as a lease for every other claim: another claim of
// the key waits for it to go or to be released. Two instances holding
// arrivals of one key both release theirs, but the later one, under the
// lock after the earlier, finds the key free and takes its head.

// aloneArrivalsSQL returns the arrivals ($1 event ids, $2 keys, $3 the
// leases they were stored with) of destination $4 that are their key's
// one pending delivery, still under the lease they were stored with (the
// common case): each goes under that lease, with no write. One look at
// the order index per arrival, and no key lock: while the arrival's lease
// holds, no other claim takes it or, the key being leased, another
// delivery of its key; and of two arrivals of one key, each stored before
// its own look, the later look sees the other. Two arrivals of one key in
// the same batch see each other, and go by claimArrivalsSQL.
const aloneArrivalsSQL = `
SELECT a.id FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS a(id, order_key, lease)
CROSS JOIN LATERAL (
	-- The key's first two pending deliveries, with how many there are
	-- (1 or 2): the first is the head.
	SELECT p.event_id, p.locked_until, count(*) OVER () AS n FROM (
		SELECT h.event_id, h.locked_until FROM stripe_webhook_deliveries h
		WHERE h.destination = $4 AND h.order_key = a.order_key AND h.status = 'pending'
		ORDER BY h.order_created, h.event_id
		LIMIT 2) p
	LIMIT 1) f
WHERE f.n = 1 AND f.event_id = a.id AND f.locked_until = a.lease AND a.lease > now()`

// claimArrivalsSQL decides, under the keys' locks, the arrivals ($1
// event ids, $2 keys, $3 the leases they were stored with) of destination
// $4. For each key whose only live leases are these arrivals' own, its
// head goes: an arrival whose lease still holds keeps it; another head is
// leased to the caller for $5 ms if it is due, or parked behind one of
// these arrivals' leases (a sweep that found the key held parks its
// deliveries until the hold's end: to the microsecond, the hold's token).
// A head backing off from its failure waits for its retry. Every other
// arrival is released.
// Each key's arrivals are read from arrays of their own, so that a batch
// of many keys is not read again for each row looked at.
// It returns the heads that go, in claimNextSQL's columns and whether it
// was kept: the arrival's own (its event not read again), or newly leased,
// with its event.
const claimArrivalsSQL = `
WITH keys AS (
	SELECT a.order_key, array_agg(a.id) AS ids, array_agg(a.lease) AS leases
	FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS a(id, order_key, lease)
	GROUP BY a.order_key),
heads AS (
	SELECT head.event_id, head.locked_until, k.leases[array_position(k.ids, head.event_id)] AS held,
		(head.locked_until IS NULL OR head.locked_until <= now())
			AND (head.next_attempt_at <= now() OR head.next_attempt_at = ANY(k.leases)) AS free
	FROM keys k
	CROSS JOIN LATERAL (
		SELECT h.event_id, h.locked_until, h.next_attempt_at FROM stripe_webhook_deliveries h
		WHERE h.destination = $4 AND h.order_key = k.order_key AND h.status = 'pending'
		ORDER BY h.order_created, h.event_id
		LIMIT 1) head
	-- As in claimNextSQL: not NOT EXISTS, and the ORDER BY leaves the
	-- planner the order index.
	WHERE (SELECT b.event_id FROM stripe_webhook_deliveries b
			WHERE b.destination = $4 AND b.order_key = k.order_key AND b.status = 'pending'
				AND b.locked_until IS NOT NULL AND b.locked_until > now()
				AND NOT EXISTS (SELECT 1 FROM unnest(k.ids, k.leases) AS o(id, lease) WHERE o.id = b.event_id AND o.lease = b.locked_until)
			ORDER BY b.order_created, b.event_id
			LIMIT 1) IS NULL),
kept AS (
	SELECT event_id, held FROM heads WHERE held IS NOT NULL AND locked_until = held AND held > now()),
claimed AS (
	UPDATE stripe_webhook_deliveries d
	SET locked_until = now() + $5::bigint * interval '1 millisecond',
		next_attempt_at = now() + $5::bigint * interval '1 millisecond'
	FROM heads
	WHERE heads.held IS NULL AND heads.free AND d.event_id = heads.event_id AND d.destination = $4
		AND d.status NOT IN ('delivered', 'dead') AND (d.locked_until IS NULL OR d.locked_until <= now())
	RETURNING d.event_id, d.locked_until, d.order_key),
released AS (
	UPDATE stripe_webhook_deliveries d SET locked_until = NULL, next_attempt_at = now()
	FROM unnest($1::text[], $3::timestamptz[]) AS a(id, lease)
	WHERE d.event_id = a.id AND d.destination = $4 AND d.status NOT IN ('delivered', 'dead') AND d.locked_until = a.lease
		AND a.id NOT IN (SELECT event_id FROM kept)),
-- A sweep parks a key's deliveries until the end of the latest lease it
-- found, which may be one of these holds, and of a key these arrivals do
-- not free (another instance's hold is live): its deliveries parked
-- until a hold's end are made due, for the decision of that hold's
-- instance, or a sweep, to take. A head leased here is left to claimed.
unparked AS (
	UPDATE stripe_webhook_deliveries d SET next_attempt_at = now()
	FROM (SELECT p.event_id FROM keys k CROSS JOIN LATERAL (
		-- The ORDER BY, with sorts off, leaves the planner the order
		-- index: the key's own deliveries.
		SELECT h.event_id FROM stripe_webhook_deliveries h
		WHERE h.destination = $4 AND h.order_key = k.order_key AND h.status = 'pending'
			AND h.locked_until IS NULL AND h.next_attempt_at = ANY(k.leases)
		ORDER BY h.order_created, h.event_id) p) p
	WHERE d.event_id = p.event_id AND d.destination = $4 AND d.status NOT IN ('delivered', 'dead')
		AND d.event_id NOT IN (SELECT event_id FROM heads WHERE held IS NULL AND free))
SELECT k.event_id, '', NULL::timestamptz, false, '', '', '', NULL::bytea, k.held, '', $4, true FROM kept k
UNION ALL
SELECT e.event_id, e.event_type, e.stripe_created, e.livemode,
	COALESCE(e.account, ''), COALESCE(e.api_version, ''), COALESCE(e.source, ''), e.payload, c.locked_until, c.order_key, $4, false
FROM claimed c JOIN stripe_webhook_events e ON e.event_id = c.event_id`

// Arrival is a keyed delivery this instance stored, and the lease it was
// stored with.
type Arrival struct {
	EventID, Key string
	Lease        time.Time
}

// ClaimArrivals decides arrivals of destination: it returns the event ids
// of those that go under the lease they were stored with, and the heads
// of their keys it leased to the caller for lease (the caller delivers
// them, or gives them back: GiveBack). The other arrivals are released
// for a later claim. Arrivals alone on their key are decided first
// (aloneArrivalsSQL), the others then under their keys' locks. On an
// error, the arrivals not in keep are not decided: their leases end by
// themselves.
func (s *Store) ClaimArrivals(ctx context.Context, destination string, arrivals []Arrival, lease time.Duration) (keep []string, next []Next, err error) {
	if lease <= 0 {
		return nil, nil, errors.New("claiming arrived order keys: the deliveries need a lease")
	}
	if len(arrivals) == 0 {
		return nil, nil, nil
	}
	c := arrivalColumns(arrivals)
	err = s.underKeyLocks(ctx, nil, nil, func(rows pgx.Rows) error {
		keep, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	}, aloneArrivalsSQL, c.ids, c.keys, c.leases, destination)
	if err != nil {
		return nil, nil, fmt.Errorf("deciding %d arrived deliveries of order keys at %s: %w", len(arrivals), destination, err)
	}
	if len(keep) == len(arrivals) {
		return keep, nil, nil
	}
	nAlone := len(keep)
	alone := make(map[string]bool, len(keep))
	for _, id := range keep {
		alone[id] = true
	}
	c = arrivalColumns(slices.DeleteFunc(slices.Clone(arrivals), func(a Arrival) bool { return alone[a.EventID] }))
	dests := make([]string, len(c.ids))
	for i := range dests {
		dests[i] = destination
	}
	err = s.underKeyLocks(ctx, dests, c.keys, func(rows pgx.Rows) error {
		for rows.Next() {
			var kept bool
			n, err := scanNext(rows, &kept)
			if err != nil {
				return err
			}
			if kept {
				keep = append(keep, n.Event.ID)
			} else {
				next = append(next, n)
			}
		}
		return rows.Err()
	}, claimArrivalsSQL, c.ids, c.keys, c.leases, destination, lease.Milliseconds())
	if err != nil {
		// Rolled back, or its answer lost after the COMMIT: a row leased
		// here then goes when its lease ends.
		return keep[:nAlone], nil, fmt.Errorf("claiming %d arrived deliveries of order keys at %s: %w", len(c.ids), destination, err)
	}
	return keep, next, nil
}

// arrivalCols holds arrivals as the statements' arrays.
type arrivalCols struct {
	ids, keys []string
	leases    []time.Time
}

func arrivalColumns(as []Arrival) arrivalCols {
	c := arrivalCols{ids: make([]string, len(as)), keys: make([]string, len(as)), leases: make([]time.Time, len(as))}
	for i, a := range as {
		c.ids[i], c.keys[i], c.leases[i] = a.EventID, a.Key, a.Lease
	}
	return c
}
