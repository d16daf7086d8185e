package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/route"
)

// The delivery state machine. One row per (event, destination) in
// stripe_webhook_deliveries:
//
//	InsertEvents ──> pending (leased to the inserting instance; with an
//	                 order key, the lease only held until ClaimArrivals)
//	pending, held ──ClaimArrivals──> pending, leased (its key's head, the
//	                 key free) or pending, due now, under no lease
//	pending ──Claim──> pending, leased (locked_until = the lease's token);
//	                   with an order key, only its key's head, while no
//	                   delivery of the key is leased (see below)
//	pending ──WriteResultsClaimingNext, its key's head finished──> pending, leased
//	pending, leased ──GiveBack──> pending, due now, under no lease
//	pending ──Claim, held back behind its key's head──> pending, parked
//	pending ──WriteResults, ok──> delivered
//	pending ──WriteResults, failed──> pending, next attempt after a backoff
//	                               └─> dead, at the destination's max attempts
//	dead | delivered ──ReplayIDs, ReplayBatch──> pending, due now, attempts from 0
//	(no delivery) ──BackfillBatch──> pending, due now
//
// A lease has one owner: whoever writes it decides its length, and its
// token is the locked_until it wrote. A result applies only while the row
// is pending and still holds the token the result's writer was given; a
// result that finds another token (the lease ran out and another instance
// claimed the row) is stale, and is counted and left alone. A replay
// clears a finished row's token, so a late result of its last attempt
// finds none, and leaves a pending row's live lease to its holder. The
// pruner deletes only events whose deliveries are all finished (pruner.go).

// Lease is the hold on the deliveries of one event that InsertEvents or
// Claim gave their caller.
type Lease struct {
	// Start is a local time no later than the start of the lease: the
	// holder counts the lease's Length from it.
	Start time.Time
	// Until is the row's locked_until as stored: the lease's token. A
	// result applies only while the row still holds this value.
	Until time.Time
	// Length is how long the lease lasts from Start, as its writer decided.
	Length time.Duration
}

// claimSQL takes one destination's due pending deliveries without an
// order key (retries, and deliveries whose lease ended because their
// instance died or its queue was full) and leases them to the caller. SKIP
// LOCKED lets every instance sweep at once without two of them taking the
// same row. A delivery leased here becomes due again when the lease ends,
// so a crash after the claim loses nothing. The deliveries taken start
// within $3 payload bytes (octet_length reads a stored value's size
// without decompressing it): the last may pass the room, so that a large
// event is never stuck behind small ones.
// $1 limit, $2 lease ms, $3 byte room, $4 destination.
const claimSQL = `
WITH candidates AS (
	SELECT event_id, next_attempt_at FROM stripe_webhook_deliveries
	WHERE destination = $4 AND status = 'pending' AND next_attempt_at <= now()
		AND (locked_until IS NULL OR locked_until <= now()) AND order_key IS NULL
	ORDER BY next_attempt_at
	LIMIT $1
	FOR UPDATE SKIP LOCKED),
` + leaseCandidates

// leaseCandidates leases the rows of a CTE candidates (event_id,
// next_attempt_at) that fit in the byte room, and reads their events.
// $2 lease ms, $3 byte room, $4 destination.
const leaseCandidates = `due AS (
	SELECT event_id FROM (
		SELECT c.event_id, octet_length(e.payload) AS size,
			sum(octet_length(e.payload)) OVER (ORDER BY c.next_attempt_at, c.event_id) AS total
		FROM candidates c JOIN stripe_webhook_events e ON e.event_id = c.event_id) s
	WHERE total - size < $3),
claimed AS (
	UPDATE stripe_webhook_deliveries d
	SET locked_until = now() + $2::bigint * interval '1 millisecond',
		next_attempt_at = now() + $2::bigint * interval '1 millisecond'
	FROM due
	WHERE d.event_id = due.event_id AND d.destination = $4
	RETURNING d.event_id, d.locked_until, COALESCE(d.order_key, '') AS order_key)
SELECT e.event_id, e.event_type, e.stripe_created, e.livemode,
	COALESCE(e.account, ''), COALESCE(e.api_version, ''), COALESCE(e.source, ''), e.payload, claimed.locked_until, claimed.order_key
FROM claimed JOIN stripe_webhook_events e ON e.event_id = claimed.event_id`

// Deliveries with an order key go one key at a time. A key's head is its
// pending delivery with the lowest (order_created, event_id): the event's
// Stripe created time (one-second resolution), then its id. A claim takes
// a key's head only, and only while no delivery of the key is under a
// lease. A failed head stays the head, backing off, and holds back its
// key alone; once delivered or dead, the next one is its key's head.
//
// Two claimers must never lease two deliveries of one key. SKIP LOCKED on
// the head is not enough: while one claim leases the head, uncommitted,
// another may see an older event just stored as the head and lease it. So
// a claim takes each key's transaction-scoped advisory lock (keyed by a
// hash of destination and key; a collision only makes two keys wait on
// each other) with pg_try_advisory_xact_lock, skipping keys another claim
// holds, and reads heads and leases in a later statement, whose snapshot
// sees every lease committed before it got the lock.
//
// The deliveries of a key held back behind its head would be due all the
// while and fill every claim's window, holding back the other keys. A
// claim therefore parks the ones it looks at: their next_attempt_at moves
// to when their key may move again (the end of the lease in flight, or
// the head's next attempt). When a head is delivered or goes dead, the
// result write takes its key's advisory lock, waiting for a claim of the
// key under way, and then makes the next head due at once (wakeNextSQL):
// no wake is lost to a park that commits just after it. The dispatcher
// writes its results with WriteResultsClaimingNext instead: under the
// same lock, the next head is leased to the writer (claimNextSQL), by the
// claim's rule, and the key goes on without a sweep.

// orderWindowSQL finds up to $3 keys with due deliveries among the $2
// oldest due keyed deliveries of destination $1, takes each key's
// advisory lock when it is free, and returns the window's deliveries of
// the keys locked: (event_id, order_key, next_attempt_at). The locks'
// first key, 1869310329, is "okey" in ASCII: two-key advisory locks are
// apart from the one-key ones of migrations and leaders.
const orderWindowSQL = `
WITH win AS MATERIALIZED (
	SELECT event_id, order_key, next_attempt_at FROM stripe_webhook_deliveries
	WHERE destination = $1 AND status = 'pending' AND order_key IS NOT NULL
		AND next_attempt_at <= now() AND (locked_until IS NULL OR locked_until <= now())
	ORDER BY next_attempt_at
	LIMIT $2),
keys AS MATERIALIZED (
	SELECT order_key FROM win GROUP BY order_key ORDER BY min(next_attempt_at) LIMIT $3),
locked AS MATERIALIZED (
	SELECT order_key FROM keys WHERE pg_try_advisory_xact_lock(1869310329, hashtext($1 || E'\n' || order_key)))
SELECT w.event_id, w.order_key, w.next_attempt_at FROM win w WHERE w.order_key IN (SELECT order_key FROM locked)`

// orderPlansSQL makes the transactions of order keys (claims, wakes)
// read each key's head from the order index (destination, key, created,
// id), which yields it first, and find rows by their primary key. Left to
// itself, with statistics from when the table held few keyed deliveries,
// the planner walked the due index of the whole destination for each key,
// filtering on the key and sorting: a claim of 200 keys in a bench with a
// backlog of 11,000 read 2 million index entries. With sorts off, only the
// order index serves a head without one; the rest are indexPlansSQL's.
// JIT is off: a sort that no plan avoids (the byte room's running sum)
// costs past its threshold with sorts off, and compiling would take longer
// than the statement.
// Their statements write a pending row's status as NOT IN ('delivered',
// 'dead'), as the result statements do, where it is not a key's lookup,
// and those given ids name them as event_id = ANY(ids) too: a bench's
// stale estimate of a few pending rows had the park read every pending
// delivery of the destination for each row it parked.
const orderPlansSQL = `SELECT set_config('enable_sort', 'off', true), set_config('jit', 'off', true), set_config('enable_hashjoin', 'off', true),
	set_config('enable_mergejoin', 'off', true), set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true)`

// orderHeadsSQL reads, for each key in $2 of destination $1, its head
// (id, whether it is due and free, next attempt) and the end of the
// latest lease on a delivery of the key (NULL: none in flight). The
// ORDER BY of the leases, with sorts off, leaves the planner the order
// index: the key's own deliveries (with stale statistics it walked the
// destination's due index instead, for each key).
const orderHeadsSQL = `
SELECT k.key, h.event_id, h.next_attempt_at <= now() AND (h.locked_until IS NULL OR h.locked_until <= now()), h.next_attempt_at,
	(SELECT max(l.locked_until) FROM (SELECT b.locked_until FROM stripe_webhook_deliveries b
		WHERE b.destination = $1 AND b.order_key = k.key AND b.status = 'pending'
			AND b.locked_until IS NOT NULL AND b.locked_until > now()
		ORDER BY b.order_created, b.event_id) l)
FROM unnest($2::text[]) AS k(key)
CROSS JOIN LATERAL (
	SELECT event_id, next_attempt_at, locked_until FROM stripe_webhook_deliveries h
	WHERE h.destination = $1 AND h.order_key = k.key AND h.status = 'pending'
	ORDER BY h.order_created, h.event_id
	LIMIT 1) h`

// claimHeadsSQL leases the heads in $1, as claimSQL does. It finds them
// by their primary key alone: a join to the list of ids would read every
// id for each row found (a claim of 100 heads of a backlog of 11,000 took
// twice as long).
// $1 ids, $2 lease ms, $3 byte room, $4 destination.
const claimHeadsSQL = `
WITH candidates AS (
	SELECT d.event_id, d.next_attempt_at FROM stripe_webhook_deliveries d
	WHERE d.event_id = ANY($1::text[]) AND d.destination = $4 AND d.status NOT IN ('delivered', 'dead') AND d.next_attempt_at <= now()
		AND (d.locked_until IS NULL OR d.locked_until <= now())
	FOR UPDATE OF d SKIP LOCKED),
` + leaseCandidates

// parkSQL moves the next attempt of held-back deliveries ($2 ids, as
// seen at $3) to $4, or, where $4 is NULL, to the end of a lease of $5 ms
// from now. A row that changed since it was seen (made due by a result,
// or leased) or that another transaction holds is left alone.
const parkSQL = `
WITH p AS (
	SELECT d.event_id, COALESCE(p.until, now() + $5::bigint * interval '1 millisecond') AS until
	FROM stripe_webhook_deliveries d
	JOIN unnest($2::text[], $3::timestamptz[], $4::timestamptz[]) AS p(id, seen, until) ON d.event_id = p.id
	WHERE d.event_id = ANY($2::text[]) AND d.destination = $1 AND d.status NOT IN ('delivered', 'dead') AND d.next_attempt_at = p.seen
		AND (d.locked_until IS NULL OR d.locked_until <= now())
	FOR UPDATE OF d SKIP LOCKED)
UPDATE stripe_webhook_deliveries d SET next_attempt_at = p.until
FROM p WHERE d.event_id = p.event_id AND d.destination = $1`

// Claimed is one delivery Claim leased: its event and its lease's token.
// Event.OrderKey is the delivery's order key, "" when it has none.
type Claimed struct {
	Event *event.Event
	Lease time.Time
}

// ClaimParams bounds one Claim.
type ClaimParams struct {
	Destination string
	Limit       int           // rows at most
	RoomBytes   int64         // payload bytes at most (the first row always fits)
	Lease       time.Duration // the lease each claimed row gets
}

// orderWindow is how many due keyed deliveries a claim looks at for each
// one it may take.
const orderWindow = 4

// Claim leases due pending deliveries of one destination to the caller:
// the heads of order keys free to go first, then deliveries without a
// key. It reads every row before it returns: the claim commits only once
// its last row is read, and a result written before that would not find
// the new lease.
// A row that cannot be read back stays leased and is claimed again when
// its lease ends.
func (s *Store) Claim(ctx context.Context, p ClaimParams) ([]Claimed, error) {
	claimed, err := s.claimOrdered(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("claiming ordered deliveries: %w", err)
	}
	limit, room := p.Limit-len(claimed), p.RoomBytes
	for _, c := range claimed {
		room -= int64(len(c.Event.Payload))
	}
	if limit <= 0 || room <= 0 {
		return claimed, nil
	}
	rows, err := s.pool.Query(ctx, claimSQL, limit, p.Lease.Milliseconds(), room, p.Destination)
	if err != nil {
		return claimed, err
	}
	return scanClaimed(rows, claimed)
}

// scanClaimed appends the rows of leaseCandidates to claimed.
func scanClaimed(rows pgx.Rows, claimed []Claimed) ([]Claimed, error) {
	defer rows.Close()
	for rows.Next() {
		ev := &event.Event{}
		var created pgtype.Timestamptz
		var lease time.Time
		if err := rows.Scan(&ev.ID, &ev.Type, &created, &ev.Livemode, &ev.Account, &ev.APIVersion, &ev.Source, &ev.Payload, &lease, &ev.OrderKey); err != nil {
			return claimed, err
		}
		ev.Created = created.Time
		claimed = append(claimed, Claimed{Event: ev, Lease: lease})
	}
	return claimed, rows.Err()
}

// claimOrdered leases the heads of keys free to go, in one transaction
// holding their keys' advisory locks, and parks the held-back deliveries
// it looked at.
func (s *Store) claimOrdered(ctx context.Context, p ClaimParams) ([]Claimed, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	type seen struct {
		id  string
		due time.Time
	}
	window := map[string][]seen{}
	var keys []string
	if _, err := tx.Exec(ctx, orderPlansSQL); err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, orderWindowSQL, p.Destination, orderWindow*p.Limit, p.Limit)
	if err != nil {
		return nil, err
	}
	var w seen
	var key string
	if _, err := pgx.ForEachRow(rows, []any{&w.id, &key, &w.due}, func() error {
		if window[key] == nil {
			keys = append(keys, key)
		}
		window[key] = append(window[key], w)
		return nil
	}); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, tx.Commit(ctx)
	}
	// A new statement: its snapshot sees the leases of every claim that
	// held these keys before.
	var heads []string
	parkUntil := map[string]*time.Time{} // by key; nil: the end of the new lease
	rows, err = tx.Query(ctx, orderHeadsSQL, p.Destination, keys)
	if err != nil {
		return nil, err
	}
	var head string
	var free bool
	var next time.Time
	var busy *time.Time
	if _, err := pgx.ForEachRow(rows, []any{&key, &head, &free, &next, &busy}, func() error {
		switch {
		case busy != nil:
			until := *busy
			parkUntil[key] = &until
		case free:
			heads = append(heads, head)
			parkUntil[key] = nil
		default:
			until := next
			parkUntil[key] = &until
		}
		return nil
	}); err != nil {
		return nil, err
	}
	var claimed []Claimed
	if len(heads) > 0 {
		rows, err = tx.Query(ctx, claimHeadsSQL, heads, p.Lease.Milliseconds(), p.RoomBytes, p.Destination)
		if err != nil {
			return nil, err
		}
		if claimed, err = scanClaimed(rows, nil); err != nil {
			return nil, err
		}
	}
	taken := make(map[string]bool, len(claimed))
	for _, c := range claimed {
		taken[c.Event.OrderKey] = true
	}
	var ids []string
	var seenAt []time.Time
	var until []*time.Time
	for _, k := range keys {
		u, ok := parkUntil[k]
		if !ok || (u == nil && !taken[k]) {
			continue // no head (gone meanwhile), or its head was not taken: look again next time
		}
		for _, r := range window[k] {
			ids, seenAt, until = append(ids, r.id), append(seenAt, r.due), append(until, u)
		}
	}
	if len(ids) > 0 {
		if _, err := tx.Exec(ctx, parkSQL, p.Destination, ids, seenAt, until, p.Lease.Milliseconds()); err != nil {
			return nil, err
		}
	}
	return claimed, tx.Commit(ctx)
}

// Results apply only while their writer holds the lease: the row is
// pending and its locked_until is the token the writer was given.
//
// "Pending" is written as status NOT IN ('delivered', 'dead') (the same,
// by the table's CHECK): status = 'pending' would let the planner walk the
// pending partial index, which its statistics may show as nearly empty
// while a backlog fills it, instead of probing the primary key.

// markDeliveredSQL closes deliveries that succeeded, and returns the
// destination and order key (NULL: none) of each.
// $1 ids, $2 destinations, $3 leases.
const markDeliveredSQL = `
UPDATE stripe_webhook_deliveries d
SET status = 'delivered', delivered_at = now(), attempts = d.attempts + 1,
	locked_until = NULL, last_error = NULL
FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS r(id, destination, lease)
WHERE d.event_id = r.id AND d.destination = r.destination AND d.status NOT IN ('delivered', 'dead') AND d.locked_until = r.lease
RETURNING d.destination, d.order_key`

// markFailedSQL schedules the next attempt of deliveries that failed:
// RetryBase × 2^attempts (the exponent capped, so it cannot overflow),
// capped at RetryMax, less up to half of it at random; dead after the
// destination's MaxAttempts.
// It returns each applied row's place in the arrays (from 1), attempts,
// status, next attempt and order key.
// $1 ids, $2 destinations, $3 leases, $4 errors, $5 MaxAttempts, $6 RetryBase ms, $7 RetryMax ms.
const markFailedSQL = `
UPDATE stripe_webhook_deliveries d
SET attempts = d.attempts + 1,
	last_error = f.err,
	locked_until = NULL,
	status = CASE WHEN d.attempts + 1 >= f.max_attempts THEN 'dead' ELSE 'pending' END,
	dead_at = CASE WHEN d.attempts + 1 >= f.max_attempts THEN now() END,
	next_attempt_at = now() + least($6::float8 * power(2::float8, least(d.attempts, 62)), $7::float8)
		* (1 - random() / 2) * interval '1 millisecond'
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::int[]) WITH ORDINALITY AS f(id, destination, lease, err, max_attempts, n)
WHERE d.event_id = f.id AND d.destination = f.destination AND d.status NOT IN ('delivered', 'dead') AND d.locked_until = f.lease
RETURNING f.n, d.attempts, d.status, d.next_attempt_at, d.order_key`

// lockKeysSQL takes, in hash order (so that two transactions taking
// keys' locks never wait on each other), the advisory lock of each order
// key in $2 of the destination in $1 at its place. A claim of the key
// under way finishes first: a later statement sees what it committed
// (the deliveries it parked, the lease it took), and no wake is lost to a
// park.
const lockKeysSQL = `
SELECT pg_advisory_xact_lock(1869310329, k.h) FROM (
	SELECT DISTINCT hashtext(r.destination || E'\n' || r.order_key) AS h
	FROM unnest($1::text[], $2::text[]) AS r(destination, order_key)
	ORDER BY h
	OFFSET 0) k`

// finishedKeys is a CTE, finished: the keys ($2, of the destinations in
// $1) whose delivery was just delivered or went dead.
const finishedKeys = `finished AS (
	SELECT DISTINCT f.destination, f.order_key FROM unnest($1::text[], $2::text[]) AS f(destination, order_key))`

// wakeNextSQL makes due at once the next head of each key ($2, of the
// destinations in $1) whose delivery was just delivered or went dead, unless it is
// leased: it may have been parked behind the one that finished. A head
// that is backing off from its own failure (an older event of its key
// arrived and went first) is made due too: one early retry.
const wakeNextSQL = `
WITH ` + finishedKeys + `
UPDATE stripe_webhook_deliveries d SET next_attempt_at = now()
FROM finished k CROSS JOIN LATERAL (
	SELECT h.event_id FROM stripe_webhook_deliveries h
	WHERE h.destination = k.destination AND h.order_key = k.order_key AND h.status = 'pending'
	ORDER BY h.order_created, h.event_id
	LIMIT 1) head
WHERE d.event_id = head.event_id AND d.destination = k.destination AND d.status NOT IN ('delivered', 'dead')
	AND d.next_attempt_at > now() AND (d.locked_until IS NULL OR d.locked_until <= now())`

// claimNextSQL leases to the caller, instead of making it due, the next
// head of each key ($2, of the destinations in $1) whose delivery was just
// delivered or went dead, and reads its event: the instance that finished
// a key's delivery goes on with the key's next one without a sweep. It
// runs after lockKeysSQL, under the keys' locks, and so follows the
// claim's rule: only the key's head, and only while no delivery of the
// key is under a live lease. Like wakeNextSQL, it takes a head that is
// backing off from its own failure too (one early retry). A head it may
// not take, its key held by another delivery (an arrival another
// instance holds, say), is made due at once, as wakeNextSQL does: a sweep
// may have parked it until the end of the lease that just finished, and
// the holder's decision takes a head that is due, not one parked behind
// another's lease.
// $1 destinations, $2 keys, $3 lease ms.
const claimNextSQL = `
WITH ` + finishedKeys + `,
heads AS (
	SELECT head.event_id, k.destination, head.locked_until, head.next_attempt_at,
		-- Not NOT EXISTS: as an anti-join, the planner walked every
		-- leased delivery for each key. The ORDER BY, with sorts off,
		-- leaves it the order index: the key's own deliveries.
		(SELECT b.event_id FROM stripe_webhook_deliveries b
			WHERE b.destination = k.destination AND b.order_key = k.order_key AND b.status = 'pending'
				AND b.locked_until IS NOT NULL AND b.locked_until > now()
			ORDER BY b.order_created, b.event_id
			LIMIT 1) IS NULL AS idle
	FROM finished k
	CROSS JOIN LATERAL (
		SELECT h.event_id, h.locked_until, h.next_attempt_at FROM stripe_webhook_deliveries h
		WHERE h.destination = k.destination AND h.order_key = k.order_key AND h.status = 'pending'
		ORDER BY h.order_created, h.event_id
		LIMIT 1) head
	WHERE head.locked_until IS NULL OR head.locked_until <= now()),
next AS (
	SELECT event_id, destination FROM heads WHERE idle),
woken AS (
	UPDATE stripe_webhook_deliveries d SET next_attempt_at = now()
	FROM heads h
	WHERE NOT h.idle AND h.next_attempt_at > now() AND d.event_id = h.event_id AND d.destination = h.destination
		AND d.status NOT IN ('delivered', 'dead') AND (d.locked_until IS NULL OR d.locked_until <= now())),
claimed AS (
	UPDATE stripe_webhook_deliveries d
	SET locked_until = now() + $3::bigint * interval '1 millisecond',
		next_attempt_at = now() + $3::bigint * interval '1 millisecond'
	FROM next
	WHERE d.event_id = next.event_id AND d.destination = next.destination AND d.status NOT IN ('delivered', 'dead')
		AND (d.locked_until IS NULL OR d.locked_until <= now())
	RETURNING d.event_id, d.destination, d.locked_until, d.order_key)
SELECT e.event_id, e.event_type, e.stripe_created, e.livemode,
	COALESCE(e.account, ''), COALESCE(e.api_version, ''), COALESCE(e.source, ''), e.payload, claimed.locked_until, claimed.order_key,
	claimed.destination
FROM claimed JOIN stripe_webhook_events e ON e.event_id = claimed.event_id`

// giveBackSQL ends leases early: the deliveries ($1 ids, $2 destinations,
// $3 leases) are due at once and under no lease, for any claim to take,
// while they still hold the token they were given.
const giveBackSQL = `
UPDATE stripe_webhook_deliveries d SET locked_until = NULL, next_attempt_at = now()
FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS r(id, destination, lease)
WHERE d.event_id = r.id AND d.destination = r.destination AND d.status NOT IN ('delivered', 'dead') AND d.locked_until = r.lease`

// recordAttemptsSQL appends to the delivery history, stale results too:
// the attempt was made. An event pruned meanwhile gets no history.
// $1 ids, $2 destinations, $3 oks, $4 errors, $5 instance.
const recordAttemptsSQL = `
INSERT INTO stripe_webhook_delivery_attempts (event_id, destination, ok, error, instance)
SELECT a.id, a.destination, a.ok, NULLIF(a.err, ''), $5
FROM unnest($1::text[], $2::text[], $3::bool[], $4::text[]) AS a(id, destination, ok, err)
WHERE EXISTS (SELECT 1 FROM stripe_webhook_events e WHERE e.event_id = a.id)`

// indexPlansSQL makes the result statements find each row by its primary
// key. Left to itself, the planner joins a batch of results by hashing
// every pending row found through a partial index whose statistics say it
// is small; but the pending set, and that index's dead entries until the
// next vacuum, grow with a backlog, and so would every write. It also
// sequentially scanned a ledger that had grown since its plan was cached.
const indexPlansSQL = `SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true),
	set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true)`

// Result is the outcome of one delivery attempt.
type Result struct {
	EventID     string
	Destination string
	Lease       time.Time // the token the attempt was made under
	MaxAttempts int       // the destination's: the attempt that reaches it goes dead
	OK          bool
	Err         string // the failure, "" when OK; valid UTF-8 (see WriteResults)
	// EventType is the event's type, not written: it is handed back in
	// Applied.Failed for the caller's log.
	EventType string
}

// Backoff schedules a failed delivery's next attempt: Base × 2^attempts,
// at most Max, less up to half of it at random.
type Backoff struct {
	Base, Max time.Duration
}

// Applied counts the results WriteResults applied, by destination; the
// others found another lease (stale). Failed holds the failed results it
// applied, in no particular order.
type Applied struct {
	Delivered, Retry, Dead map[string]int
	Failed                 []Failure
	// WakeErr is why the next deliveries of finished order keys were not
	// made due at once, nor handed to the caller (they go when their park
	// ends); the results themselves were written.
	WakeErr error
	// Next holds, with WriteResultsClaimingNext, the next deliveries of
	// finished order keys, leased to the caller.
	Next []Next
}

// Next is the next delivery of an order key, leased to the instance that
// finished the key's delivery before it.
type Next struct {
	Destination string
	Claimed
}

// Failure is a failed result that WriteResults applied.
type Failure struct {
	Result
	// Attempts is the delivery's attempts, this one included.
	Attempts int
	// Dead says this was the last attempt: the delivery is a dead letter.
	Dead bool
	// NextAttempt is when the delivery is tried again, unless Dead.
	NextAttempt time.Time
}

// WriteResults applies results and appends every one to the history as
// made by instance, in one transaction and one round trip. An error is
// the whole batch's; pgerr.IsRowError tells one that a row caused (an
// error text Postgres refuses), which the caller may isolate by splitting.
func (s *Store) WriteResults(ctx context.Context, results []Result, backoff Backoff, instance string) (Applied, error) {
	return s.writeResults(ctx, results, backoff, instance, 0)
}

// WriteResultsClaimingNext is WriteResults, but the next delivery of each
// order key that its results finished is leased to the caller for lease,
// rather than made due, and returned in Applied.Next: the caller delivers
// it, or gives it back (GiveBack). This is a claim of the key's head by
// the claim's rule, in a transaction of its own after the results commit.
func (s *Store) WriteResultsClaimingNext(ctx context.Context, results []Result, backoff Backoff, instance string, lease time.Duration) (Applied, error) {
	if lease <= 0 {
		return Applied{}, errors.New("writing results: the next deliveries need a lease")
	}
	return s.writeResults(ctx, results, backoff, instance, lease)
}

// writeResults writes results; a positive lease claims the next
// deliveries of finished keys instead of waking them.
func (s *Store) writeResults(ctx context.Context, results []Result, backoff Backoff, instance string, lease time.Duration) (Applied, error) {
	var ok, failed, all resultColumns
	var failedResults []Result
	// finished holds the order keys (and their destinations) of the
	// deliveries these results delivered or made dead: each key's next
	// delivery is made due, or claimed.
	var finished struct{ dests, keys []string }
	finish := func(dest string, key *string) {
		if key != nil {
			finished.dests, finished.keys = append(finished.dests, dest), append(finished.keys, *key)
		}
	}
	for _, r := range results {
		all.add(r)
		if r.OK {
			ok.add(r)
		} else {
			failed.add(r)
			failedResults = append(failedResults, r)
		}
	}
	applied := Applied{Delivered: map[string]int{}, Retry: map[string]int{}, Dead: map[string]int{}}
	// One round trip: the transaction, its plan settings and the three
	// statements go as one batch. A statement that fails aborts the
	// transaction and its COMMIT (the pool drops the connection); if the
	// answer is lost after the COMMIT ran, the batch is written again and
	// finds its leases gone: counted stale, with its attempts recorded twice.
	var b pgx.Batch
	b.Queue("BEGIN")
	b.Queue(indexPlansSQL)
	b.Queue(markDeliveredSQL, ok.ids, ok.dests, ok.leases).Query(func(rows pgx.Rows) error {
		var dest string
		var key *string
		_, err := pgx.ForEachRow(rows, []any{&dest, &key}, func() error {
			applied.Delivered[dest]++
			finish(dest, key)
			return nil
		})
		return err
	})
	b.Queue(markFailedSQL, failed.ids, failed.dests, failed.leases, failed.errs, failed.maxAttempts,
		backoff.Base.Milliseconds(), backoff.Max.Milliseconds()).
		Query(func(rows pgx.Rows) error {
			var n int64
			var f Failure
			var status Status
			var key *string
			_, err := pgx.ForEachRow(rows, []any{&n, &f.Attempts, &status, &f.NextAttempt, &key}, func() error {
				if n < 1 || n > int64(len(failedResults)) {
					return fmt.Errorf("writing results: a failed row's place %d is out of range", n)
				}
				f.Result, f.Dead = failedResults[n-1], status == StatusDead
				if f.Dead {
					applied.Dead[f.Destination]++
					finish(f.Destination, key)
				} else {
					applied.Retry[f.Destination]++
				}
				applied.Failed = append(applied.Failed, f)
				return nil
			})
			return err
		})
	b.Queue(recordAttemptsSQL, all.ids, all.dests, all.oks, all.errs, instance)
	b.Queue("COMMIT")
	if err := s.pool.SendBatch(ctx, &b).Close(); err != nil {
		return Applied{}, err
	}
	if len(finished.keys) > 0 {
		if lease > 0 {
			applied.Next, applied.WakeErr = s.claimNextHeads(ctx, finished.dests, finished.keys, lease)
		} else {
			applied.WakeErr = s.wakeNextHeads(ctx, finished.dests, finished.keys)
		}
	}
	return applied, nil
}

// claimNextHeads leases to the caller the next head of each key (of the
// destination at its place) whose delivery just finished, in a
// transaction of its own after the results committed, under the keys'
// locks (as wakeNextHeads). It reads every row before it returns (see
// Claim).
func (s *Store) claimNextHeads(ctx context.Context, dests, keys []string, lease time.Duration) ([]Next, error) {
	var next []Next
	err := s.underKeyLocks(ctx, dests, keys, func(rows pgx.Rows) error {
		for rows.Next() {
			n, err := scanNext(rows)
			if err != nil {
				return err
			}
			next = append(next, n)
		}
		return rows.Err()
	}, claimNextSQL, dests, keys, lease.Milliseconds())
	if err != nil {
		// Rolled back, or its answer lost after the COMMIT: a row leased
		// here then goes when its lease ends.
		return nil, fmt.Errorf("claiming the next deliveries of %d order keys: %w", len(keys), err)
	}
	return next, nil
}

// underKeyLocks runs sql with args, its rows (if any) read by read, in a
// transaction of its own, within wakeTimeout, with the order keys' plan
// settings and under the advisory lock of each key (of the destination at
// its place; no keys, no lock): one round trip.
func (s *Store) underKeyLocks(ctx context.Context, dests, keys []string, read func(pgx.Rows) error, sql string, args ...any) error {
	ctx, cancel := context.WithTimeout(ctx, wakeTimeout)
	defer cancel()
	var b pgx.Batch
	b.Queue("BEGIN")
	b.Queue(orderPlansSQL)
	if len(keys) > 0 {
		b.Queue(lockKeysSQL, dests, keys)
	}
	q := b.Queue(sql, args...)
	if read != nil {
		q.Query(read)
	}
	b.Queue("COMMIT")
	return s.pool.SendBatch(ctx, &b).Close()
}

// scanNext reads a leased delivery and its event, in the columns of
// claimNextSQL: the event's, then the lease, the order key and the
// destination; then extra.
func scanNext(rows pgx.Rows, extra ...any) (Next, error) {
	ev := &event.Event{}
	var created pgtype.Timestamptz
	var n Next
	err := rows.Scan(append([]any{&ev.ID, &ev.Type, &created, &ev.Livemode, &ev.Account, &ev.APIVersion, &ev.Source, &ev.Payload,
		&n.Lease, &ev.OrderKey, &n.Destination}, extra...)...)
	ev.Created = created.Time
	n.Event = ev
	return n, err
}

// GiveBack ends the leases of deliveries the caller holds and will not
// make (see WriteResultsClaimingNext): they are due at once, for any
// claim. A delivery whose lease was taken over or that finished is left
// alone.
func (s *Store) GiveBack(ctx context.Context, given []Next) error {
	var ids, dests []string
	var leases []time.Time
	for _, g := range given {
		ids, dests, leases = append(ids, g.Event.ID), append(dests, g.Destination), append(leases, g.Lease)
	}
	if len(ids) == 0 {
		return nil
	}
	var b pgx.Batch
	b.Queue("BEGIN")
	b.Queue(indexPlansSQL)
	b.Queue(giveBackSQL, ids, dests, leases)
	b.Queue("COMMIT")
	if err := s.pool.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("giving back %d deliveries: %w", len(ids), err)
	}
	return nil
}

// wakeNextHeads makes due the next head of each key whose delivery just
// finished, in a transaction of its own after the results committed: the
// key locks it waits for (a claim of the key under way) never hold up the
// results, nor other destinations' results written beside them. A wake
// that fails is not lost work: the parked deliveries become due when their
// park ends (the lease they waited behind, at most).
func (s *Store) wakeNextHeads(ctx context.Context, dests, keys []string) error {
	if err := s.underKeyLocks(ctx, dests, keys, nil, wakeNextSQL, dests, keys); err != nil {
		return fmt.Errorf("waking the next deliveries of %d order keys: %w", len(keys), err)
	}
	return nil
}

// wakeTimeout bounds a wake: past it, the parked deliveries wait for
// their park to end.
const wakeTimeout = 5 * time.Second

// resultColumns holds results as the statements' arrays.
type resultColumns struct {
	ids, dests, errs []string
	leases           []time.Time
	maxAttempts      []int32
	oks              []bool
}

func (rc *resultColumns) add(r Result) {
	rc.ids = append(rc.ids, r.EventID)
	rc.dests = append(rc.dests, r.Destination)
	rc.errs = append(rc.errs, r.Err)
	rc.leases = append(rc.leases, r.Lease)
	rc.maxAttempts = append(rc.maxAttempts, int32(r.MaxAttempts))
	rc.oks = append(rc.oks, r.OK)
}

// OldestPendingAge returns the age of destination's oldest pending
// delivery, 0 when none is pending. It reads one index entry.
func (s *Store) OldestPendingAge(ctx context.Context, destination string) (time.Duration, error) {
	var age float64
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(extract(epoch FROM now() - min(received_at)), 0)::float8
		FROM stripe_webhook_deliveries WHERE destination = $1 AND status = 'pending'`, destination).Scan(&age)
	return time.Duration(age * float64(time.Second)), err
}

// A replay puts deliveries back to pending, due now, with a fresh attempt
// count; a backfill gives a destination a pending delivery of events it
// never had. Every statement here does a bounded amount of work (the ids
// it is given, or one batch of a walk), so that a replay of a million
// dead letters is many short transactions, never one long one; the walks
// themselves are in admin.

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

// ReplayIDsOptions says which deliveries of the given events ReplayIDs
// puts back.
type ReplayIDsOptions struct {
	// Destination, when set, replays only the delivery to it; else every
	// delivery of the events, whatever its state.
	Destination string
	// Create gives an event that has no delivery to Destination one.
	Create bool
	// Existing replays only existing deliveries that are not pending
	// (delivered or dead); with OnlyDead, only dead ones. It needs
	// Destination and excludes Create.
	Existing, OnlyDead bool
}

// ReplayIDs puts the deliveries of the given events back to pending, as o
// says, in one statement, and returns the ids of the events it replayed
// (each once); the others do not exist or had nothing to replay. Callers
// bound len(ids).
func (s *Store) ReplayIDs(ctx context.Context, ids []string, o ReplayIDsOptions) ([]string, error) {
	var sql string
	var args []any
	switch {
	case (o.Existing || o.Create || o.OnlyDead) && o.Destination == "":
		return nil, errors.New("replaying: no destination")
	case o.Existing && o.Create:
		return nil, errors.New("replaying: both existing deliveries only and creating them")
	case o.Existing:
		sql = `WITH ` + lockedIDs + `,
			r AS (
				UPDATE stripe_webhook_deliveries d SET ` + replaySet + `
				FROM locked
				WHERE d.event_id = locked.event_id AND d.destination = $2
					AND d.status <> 'pending' AND (NOT $3 OR d.status = 'dead')
				RETURNING d.event_id)
			SELECT DISTINCT event_id FROM r`
		args = []any{ids, o.Destination, o.OnlyDead}
	case o.Create:
		sql = `WITH r AS (
				INSERT INTO stripe_webhook_deliveries AS d (event_id, destination, received_at)
				SELECT event_id, $2, received_at FROM stripe_webhook_events
				WHERE event_id = ANY($1::text[]) AND status = 'routed'
				ORDER BY event_id
				FOR KEY SHARE
				ON CONFLICT (event_id, destination) DO UPDATE SET ` + replaySet + `
				RETURNING d.event_id)
			SELECT DISTINCT event_id FROM r`
		args = []any{ids, o.Destination}
	default:
		sql = `WITH ` + lockedIDs + `,
			r AS (
				UPDATE stripe_webhook_deliveries d SET ` + replaySet + `
				FROM locked WHERE d.event_id = locked.event_id AND ($2 = '' OR d.destination = $2)
				RETURNING d.event_id)
			SELECT DISTINCT event_id FROM r`
		args = []any{ids, o.Destination}
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("replaying: %w", err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("replaying: %w", err)
	}
	return found, nil
}

// ReplayBatch puts up to b.Size deliveries that f selects back to pending,
// oldest first from b.After, in one statement. Dead letters are walked
// through the dead-letter index of f.Destination; delivered deliveries
// (of f.Destination, or of every destination) by walking b.Size events of
// the ledger. Each batch locks its events FOR KEY SHARE first, so the
// pruner cannot delete them meanwhile.
func (s *Store) ReplayBatch(ctx context.Context, f DeliveryFilter, b Batch) (BatchResult, error) {
	args, err := f.args()
	if err != nil {
		return BatchResult{}, err
	}
	b.walkArgs(args)
	var sql string
	if f.Status == StatusDead {
		sql = `WITH picked AS (
				SELECT d.event_id, d.received_at FROM stripe_webhook_deliveries d
				WHERE ` + deadMatch + ` AND (d.dead_at IS NULL OR d.dead_at <= @started)
					AND (d.received_at > @at OR (d.received_at = @at AND d.event_id COLLATE "C" > @id))
				ORDER BY d.received_at, d.event_id COLLATE "C" LIMIT @batch),
			locked AS (
				SELECT e.event_id FROM stripe_webhook_events e
				WHERE e.event_id IN (SELECT event_id FROM picked) ORDER BY e.event_id FOR KEY SHARE),
			done AS (
				UPDATE stripe_webhook_deliveries d SET ` + replaySet + `
				FROM locked WHERE d.event_id = locked.event_id AND d.destination = @dest AND d.status = 'dead'
				RETURNING d.event_id)
			SELECT (SELECT count(*) FROM done), (SELECT count(*) FROM picked), last.received_at, last.event_id
			FROM (SELECT 1) one LEFT JOIN (
				SELECT received_at, event_id FROM picked ORDER BY received_at DESC, event_id COLLATE "C" DESC LIMIT 1) last ON true`
	} else {
		sql = `WITH picked AS (
				SELECT e.event_id, e.received_at FROM stripe_webhook_events e
				WHERE e.received_at >= @since AND e.received_at < @until
					AND (e.received_at > @at OR (e.received_at = @at AND e.event_id COLLATE "C" > @id))
					AND (@anytype OR e.event_type LIKE ANY(@types::text[]))
				ORDER BY e.received_at, e.event_id COLLATE "C" LIMIT @batch),
			locked AS (
				SELECT e.event_id FROM stripe_webhook_events e
				WHERE e.event_id IN (SELECT event_id FROM picked) ORDER BY e.event_id FOR KEY SHARE),
			done AS (
				UPDATE stripe_webhook_deliveries d SET ` + replaySet + `
				FROM locked WHERE d.event_id = locked.event_id AND (@dest = '' OR d.destination = @dest)
					AND d.status = 'delivered' AND (d.delivered_at IS NULL OR d.delivered_at <= @started)
				RETURNING d.event_id)
			SELECT (SELECT count(*) FROM done), (SELECT count(*) FROM picked), last.received_at, last.event_id
			FROM (SELECT 1) one LEFT JOIN (
				SELECT received_at, event_id FROM picked ORDER BY received_at DESC, event_id COLLATE "C" DESC LIMIT 1) last ON true`
	}
	r, err := walked(s.pool.QueryRow(ctx, sql, args), max(1, b.Size))
	if err != nil {
		return r, fmt.Errorf("replaying %s deliveries: %w", f.Status, err)
	}
	return r, nil
}

// BackfillBatch gives destination a pending delivery of each of the next
// b.Size events received since since (oldest first from b.After) that
// filter matches and that it has none of, in one statement.
func (s *Store) BackfillBatch(ctx context.Context, destination string, filter route.Filter, since time.Time, b Batch) (BatchResult, error) {
	if err := route.ValidName(destination); err != nil {
		return BatchResult{}, err
	}
	args := pgx.NamedArgs{"dest": destination, "since": since, "types": filter.LikePatterns(), "livemode": filter.LivemodeSQL()}
	b.walkArgs(args)
	r, err := walked(s.pool.QueryRow(ctx, `WITH picked AS (
			SELECT event_id, received_at FROM stripe_webhook_events
			WHERE received_at >= @since AND status = 'routed'
				AND (received_at > @at OR (received_at = @at AND event_id COLLATE "C" > @id))
				AND event_type LIKE ANY(@types::text[]) AND (@livemode::bool IS NULL OR livemode = @livemode)
			ORDER BY received_at, event_id COLLATE "C" LIMIT @batch),
		done AS (
			INSERT INTO stripe_webhook_deliveries (event_id, destination, received_at)
			SELECT e.event_id, @dest, e.received_at FROM stripe_webhook_events e
			WHERE e.event_id IN (SELECT event_id FROM picked)
			ORDER BY e.event_id
			FOR KEY SHARE
			ON CONFLICT (event_id, destination) DO NOTHING
			RETURNING event_id)
		SELECT (SELECT count(*) FROM done), (SELECT count(*) FROM picked), last.received_at, last.event_id
		FROM (SELECT 1) one LEFT JOIN (
			SELECT received_at, event_id FROM picked ORDER BY received_at DESC, event_id COLLATE "C" DESC LIMIT 1) last ON true`, args), max(1, b.Size))
	if err != nil {
		return r, fmt.Errorf("backfilling %s: %w", destination, err)
	}
	return r, nil
}
