package delivery_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The statements of the previous version (schema 5, commit 72402f0),
// copied unchanged: a rolling upgrade runs them beside the new version.
const (
	v5InsertSQL = `
INSERT INTO stripe_webhook_events
	(event_id, event_type, livemode, account, api_version, stripe_created, payload, locked_until, next_attempt_at)
SELECT e.id, e.type, e.livemode, NULLIF(e.account, ''), NULLIF(e.api_version, ''), e.created, e.payload,
	now() + $8::bigint * interval '1 millisecond', now() + $8::bigint * interval '1 millisecond'
FROM unnest($1::text[], $2::text[], $3::bool[], $4::text[], $5::text[], $6::timestamptz[], $7::bytea[])
	AS e(id, type, livemode, account, api_version, created, payload)
ORDER BY e.id
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id, locked_until`

	v5ClaimSQL = `
WITH candidates AS (
	SELECT event_id, next_attempt_at, octet_length(payload) AS size FROM stripe_webhook_events
	WHERE status = 'pending' AND next_attempt_at <= now()
		AND (locked_until IS NULL OR locked_until <= now())
	ORDER BY next_attempt_at
	LIMIT $1
	FOR UPDATE SKIP LOCKED),
due AS (
	SELECT event_id FROM (
		SELECT event_id, size, sum(size) OVER (ORDER BY next_attempt_at, event_id) AS total
		FROM candidates) c
	WHERE total - size < $3)
UPDATE stripe_webhook_events e
SET locked_until = now() + $2::bigint * interval '1 millisecond',
	next_attempt_at = now() + $2::bigint * interval '1 millisecond'
FROM due
WHERE e.event_id = due.event_id
RETURNING e.event_id, e.event_type, e.stripe_created, e.livemode,
	COALESCE(e.account, ''), COALESCE(e.api_version, ''), e.payload, e.locked_until`

	v5MarkDeliveredSQL = `
UPDATE stripe_webhook_events e
SET status = 'delivered', delivered_at = now(), attempts = e.attempts + 1,
	locked_until = NULL, last_error = NULL
FROM unnest($1::text[], $2::timestamptz[]) AS r(id, lease)
WHERE e.event_id = r.id AND e.status = 'pending' AND e.locked_until = r.lease
RETURNING e.event_id`

	v5MarkFailedSQL = `
UPDATE stripe_webhook_events e
SET attempts = e.attempts + 1,
	last_error = f.err,
	locked_until = NULL,
	status = CASE WHEN e.attempts + 1 >= $4 THEN 'dead' ELSE 'pending' END,
	next_attempt_at = now() + least($5::float8 * power(2::float8, least(e.attempts, 62)), $6::float8)
		* (1 - random() / 2) * interval '1 millisecond'
FROM unnest($1::text[], $2::timestamptz[], $3::text[]) AS f(id, lease, err)
WHERE e.event_id = f.id AND e.status = 'pending' AND e.locked_until = f.lease
RETURNING e.status`

	v5RecordAttemptsSQL = `
INSERT INTO stripe_webhook_delivery_attempts (event_id, ok, error, instance)
SELECT a.id, a.ok, NULLIF(a.err, ''), $4
FROM unnest($1::text[], $2::bool[], $3::text[]) AS a(id, ok, err)
WHERE EXISTS (SELECT 1 FROM stripe_webhook_events e WHERE e.event_id = a.id)`
)

// previousInstance drives the previous version's statements as one of its
// instances would: store, claim, and write results.
type previousInstance struct {
	t         *testing.T
	pool      *pgxpool.Pool
	lease     time.Duration
	delivered map[string]int // what its sink received
}

func newPreviousInstance(t *testing.T, pool *pgxpool.Pool, lease time.Duration) *previousInstance {
	return &previousInstance{t: t, pool: pool, lease: lease, delivered: map[string]int{}}
}

// store inserts events as its intake does and returns the leases of the
// new ones (a duplicate is absent).
func (p *previousInstance) store(ids ...string) map[string]time.Time {
	p.t.Helper()
	n := len(ids)
	types, accounts, versions := make([]string, n), make([]string, n), make([]string, n)
	live, created, payloads := make([]bool, n), make([]*time.Time, n), make([][]byte, n)
	for i, id := range ids {
		types[i], payloads[i] = "invoice.paid", []byte(`{"id":"`+id+`","object":"event"}`)
	}
	rows, err := p.pool.Query(context.Background(), v5InsertSQL, ids, types, live, accounts, versions, created, payloads, p.lease.Milliseconds())
	if err != nil {
		p.t.Fatal(err)
	}
	leases := map[string]time.Time{}
	var id string
	var lease time.Time
	if _, err := pgx.ForEachRow(rows, []any{&id, &lease}, func() error { leases[id] = lease; return nil }); err != nil {
		p.t.Fatal(err)
	}
	return leases
}

// claim runs its sweeper once and returns the rows it leased.
func (p *previousInstance) claim() map[string]time.Time {
	p.t.Helper()
	rows, err := p.pool.Query(context.Background(), v5ClaimSQL, 100, p.lease.Milliseconds(), int64(64<<20))
	if err != nil {
		p.t.Fatal(err)
	}
	claimed := map[string]time.Time{}
	var id, typ, account, version string
	var created *time.Time
	var live bool
	var payload []byte
	var lease time.Time
	if _, err := pgx.ForEachRow(rows, []any{&id, &typ, &created, &live, &account, &version, &payload, &lease}, func() error {
		claimed[id] = lease
		return nil
	}); err != nil {
		p.t.Fatal(err)
	}
	return claimed
}

// deliver sends the events to its sink and writes the results, as its
// workers and result writer do. It returns the results applied.
func (p *previousInstance) deliver(leases map[string]time.Time) int {
	p.t.Helper()
	var ids []string
	var ls []time.Time
	var oks []bool
	var errs []string
	for id, l := range leases {
		p.delivered[id]++
		ids, ls, oks, errs = append(ids, id), append(ls, l), append(oks, true), append(errs, "")
	}
	var applied int
	err := pgx.BeginFunc(context.Background(), p.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(context.Background(), v5MarkDeliveredSQL, ids, ls)
		if err != nil {
			return err
		}
		applied = int(tag.RowsAffected())
		_, err = tx.Exec(context.Background(), v5RecordAttemptsSQL, ids, oks, errs, "previous")
		return err
	})
	if err != nil {
		p.t.Fatal(err)
	}
	return applied
}

// fail writes failed results, dead after maxAttempts, retried after
// about retry.
func (p *previousInstance) fail(leases map[string]time.Time, maxAttempts int, retry time.Duration) {
	p.t.Helper()
	var ids, errs []string
	var ls []time.Time
	for id, l := range leases {
		ids, ls, errs = append(ids, id), append(ls, l), append(errs, "sink answered 503")
	}
	if _, err := p.pool.Exec(context.Background(), v5MarkFailedSQL, ids, ls, errs, maxAttempts, retry.Milliseconds(), retry.Milliseconds()); err != nil {
		p.t.Fatal(err)
	}
}
