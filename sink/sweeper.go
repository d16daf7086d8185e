package sink

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/internal/ratelog"
)

// claimSQL takes due pending rows (retries, and rows whose lease ended
// because their instance died or its queue was full) and leases them to
// this instance. SKIP LOCKED lets every instance sweep at once without two
// of them taking the same row. A row leased here becomes due again when
// the lease ends, so a crash after the claim loses nothing. The rows taken
// fit in $3 payload bytes (octet_length reads a stored value's size without
// decompressing it); with $4, the first row is taken whatever its size, so
// that an event larger than the queue's bound is never stuck.
// $1 limit, $2 lease ms, $3 byte room, $4 queue empty.
const claimSQL = `
WITH candidates AS (
	SELECT event_id, next_attempt_at, octet_length(payload) AS size FROM stripe_webhook_events
	WHERE status = 'pending' AND next_attempt_at <= now()
		AND (locked_until IS NULL OR locked_until <= now())
	ORDER BY next_attempt_at
	LIMIT $1
	FOR UPDATE SKIP LOCKED),
due AS (
	SELECT event_id FROM (
		SELECT event_id, size,
			sum(size) OVER (ORDER BY next_attempt_at, event_id) AS total,
			row_number() OVER (ORDER BY next_attempt_at, event_id) AS n
		FROM candidates) c
	WHERE total <= $3 OR (n = 1 AND $4))
UPDATE stripe_webhook_events e
SET locked_until = now() + $2::bigint * interval '1 millisecond',
	next_attempt_at = now() + $2::bigint * interval '1 millisecond'
FROM due
WHERE e.event_id = due.event_id
RETURNING e.event_id, e.event_type, e.stripe_created, e.livemode,
	COALESCE(e.account, ''), COALESCE(e.api_version, ''), e.payload, e.locked_until`

// sweeper claims due rows into the dispatcher's queue, never more than the
// queue has room for.
type sweeper struct {
	cfg  DispatcherConfig
	d    *Dispatcher
	errs ratelog.Logger
	quit chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

func startSweeper(cfg DispatcherConfig, d *Dispatcher) *sweeper {
	s := &sweeper{cfg: cfg, d: d, errs: ratelog.Logger{Log: cfg.Logger}, quit: make(chan struct{})}
	s.wg.Add(1)
	go s.run()
	return s
}

func (s *sweeper) run() {
	defer s.wg.Done()
	for {
		// Jitter keeps instances started together from sweeping in step.
		wait := s.cfg.SweepInterval/2 + rand.N(s.cfg.SweepInterval)
		select {
		case <-s.quit:
			return
		case <-time.After(wait):
		}
		for s.sweep() { // a full batch: more may be due
			select {
			case <-s.quit:
				return
			default:
			}
		}
	}
}

// sweep claims one batch and reports whether it was full.
func (s *sweeper) sweep() bool {
	room, bytes := s.d.free()
	limit := min(s.cfg.SweepBatch, room)
	empty := s.d.QueueBytes() == 0
	if limit == 0 || (bytes <= 0 && !empty) {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	rows, err := s.cfg.Pool.Query(ctx, claimSQL, limit, s.cfg.Lease.Milliseconds(), max(bytes, 0), empty)
	if err != nil {
		s.cfg.Metrics.PostgresError("sweep")
		s.errs.Warn("sweeper: claiming due events failed", "error", err)
		return false
	}
	defer rows.Close()
	leaseUntil := start.Add(s.cfg.Lease - leaseMargin)
	// Every row is read before any is handed over: the claim commits only
	// once its last row is sent, and a result written before that would
	// not see the new lease.
	var jobs []job
	for rows.Next() {
		ev := &dedup.Event{}
		var created pgtype.Timestamptz
		var lease time.Time
		if err := rows.Scan(&ev.ID, &ev.Type, &created, &ev.Livemode, &ev.Account, &ev.APIVersion, &ev.Payload, &lease); err != nil {
			s.errs.Warn("sweeper: reading a claimed event failed; it is retried after its lease", "error", err)
			return false
		}
		ev.Created = created.Time
		jobs = append(jobs, job{ev: ev, lease: lease, leaseUntil: leaseUntil})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		s.errs.Warn("sweeper: claiming due events failed; the rows are retried after their lease", "error", err)
		return false
	}
	for _, j := range jobs {
		// false: stopping, or the intake filled the queue; the lease ends
		// and a sweeper takes the row again.
		s.d.offer(j)
	}
	return len(jobs) == limit
}

func (s *sweeper) stop() {
	s.once.Do(func() { close(s.quit) })
	s.wg.Wait()
}
