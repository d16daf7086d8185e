package delivery

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/ratelog"
	"github.com/oncehook/oncehook/internal/startstop"
)

// claimSQL takes one destination's due pending deliveries (retries, and
// deliveries whose lease ended because their instance died or its queue
// was full) and leases them to this instance. SKIP LOCKED lets every
// instance sweep at once without two of them taking the same row. A
// delivery leased here becomes due again when the lease ends, so a crash
// after the claim loses nothing. The deliveries taken start within $3
// payload bytes (octet_length reads a stored value's size without
// decompressing it): the last may pass the room, so that a large event is
// never stuck behind small ones.
// $1 limit, $2 lease ms, $3 byte room, $4 destination.
const claimSQL = `
WITH candidates AS (
	SELECT event_id, next_attempt_at FROM stripe_webhook_deliveries
	WHERE destination = $4 AND status = 'pending' AND next_attempt_at <= now()
		AND (locked_until IS NULL OR locked_until <= now())
	ORDER BY next_attempt_at
	LIMIT $1
	FOR UPDATE SKIP LOCKED),
due AS (
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
	RETURNING d.event_id, d.locked_until)
SELECT e.event_id, e.event_type, e.stripe_created, e.livemode,
	COALESCE(e.account, ''), COALESCE(e.api_version, ''), COALESCE(e.source, ''), e.payload, claimed.locked_until
FROM claimed JOIN stripe_webhook_events e ON e.event_id = claimed.event_id`

// sweeper claims one destination's due deliveries into its lane's queue,
// never more than the queue has room for.
type sweeper struct {
	cfg  DispatcherConfig
	l    *lane
	errs ratelog.Logger
	quit chan struct{}
	// ctx bounds the claim under way; Stop cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	state  startstop.State
}

func newSweeper(cfg DispatcherConfig, l *lane) *sweeper {
	return &sweeper{cfg: cfg, l: l, errs: ratelog.Logger{Log: cfg.Logger.With("destination", l.dest.Name)}, quit: make(chan struct{})}
}

// Start sweeps every SweepInterval until Stop; ctx's values reach the
// claims, its end does not stop them. A second Start does nothing.
func (s *sweeper) Start(ctx context.Context) error {
	return s.state.Start(ctx, func(ctx context.Context) error {
		s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
		s.wg.Add(1)
		go s.run()
		return nil
	})
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
	limit := min(s.cfg.SweepBatch, s.l.freeSlots())
	if limit == 0 {
		return false
	}
	room := s.l.roomBytes()
	if room <= 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	rows, err := s.cfg.Pool.Query(ctx, claimSQL, limit, s.cfg.Lease.Milliseconds(), room, s.l.dest.Name)
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
		ev := &event.Event{}
		var created pgtype.Timestamptz
		var lease time.Time
		if err := rows.Scan(&ev.ID, &ev.Type, &created, &ev.Livemode, &ev.Account, &ev.APIVersion, &ev.Source, &ev.Payload, &lease); err != nil {
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
	// false from an offer: stopping, or the intake filled the queue
	// meanwhile; the lease ends and a sweeper takes the row again.
	total := int64(0)
	for _, j := range jobs {
		size := int64(len(j.ev.Payload))
		if total += size; total <= room {
			s.l.offer(j)
			continue
		}
		// The last row, past the room: it goes in all the same, so the
		// bound is passed by one event at most and a large one is never
		// stuck behind a stream of small ones.
		s.l.bytes.Add(size)
		if !s.l.offerReserved(j) {
			s.l.release(size)
		}
	}
	return len(jobs) == limit
}

// Stop ends the sweeps, waits for the claim under way until ctx ends,
// then cancels it (a hung Postgres). Rows a cancelled claim took stay
// pending and are swept again after their lease. It returns ctx's error
// when it had to cancel; a second Stop does nothing.
func (s *sweeper) Stop(ctx context.Context) error {
	return s.state.Stop(ctx, func(ctx context.Context) error {
		close(s.quit)
		// A claim under way finishes (its rows go to the queue, which the
		// workers drain): cancelled early, it could still commit on the server
		// after Stop returned, leasing rows to an instance that is gone.
		err := startstop.WaitGroup(ctx, &s.wg)
		s.cancel()
		return err
	})
}
