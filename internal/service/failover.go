package service

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/ratelog"
	"github.com/oncehook/oncehook/internal/startstop"
	"github.com/oncehook/oncehook/store"
)

// failoverWindowMargin is added past a failover's detection for its heal
// window's end: Stripe's clock and the server's may differ a little.
const failoverWindowMargin = time.Minute

// failoverMinOverlap is the least a heal window reaches back before the
// newest event the promoted server holds.
const failoverMinOverlap = time.Hour

// hookTimeout bounds the timeline read and record on a new connection: a
// server that goes silent, or another instance's record stuck holding
// the row lock, must not hold the pool's connections for good.
const hookTimeout = 2 * time.Second

// timelineCheckEvery is how often a running instance reads the timeline
// outside new connections: a delivery answered from Redis or the recent
// ids uses no connection, so an instance that takes no new one (or whose
// pool, given by WithPool, has no hook) still forgets within about two of
// these of the promoted server's first answer (the first read may meet a
// connection to the dead server).
const timelineCheckEvery = time.Second

// asyncWarning is what the operator is told when acknowledged events can
// be lost at a failover and nothing would recover them.
const asyncWarning = "acknowledged events can be lost at a failover: set synchronous_standby_names, or STRIPE_API_KEY so that oncehook recovers them"

// timelineWatch notices that the instance writes to a promoted Postgres
// server: the timeline of the server's WAL rises at a promotion. It
// reads it on every new connection of the pool (before the pool hands
// the connection out, see hook), at start, and every timelineCheckEvery.
// At a rise it makes the deduper forget what it remembers (subscribers),
// so that a Redis "done" key or a recent id written for a commit the
// promoted server lost no longer answers duplicate, and it records the
// failover in Postgres (store.ObserveTimeline), where the reconciler's
// leader finds it and heals it (reconcile.Healer).
type timelineWatch struct {
	log     *slog.Logger
	metrics *metrics.Metrics
	window  store.FailoverWindow
	healing bool // STRIPE_API_KEY is set: the failover's window is reconciled
	unknown ratelog.Logger

	mu       sync.Mutex
	current  int64 // the timeline written to; 0 before the first read
	recorded int64 // the timeline this process last recorded in Postgres
	subs     []func(epoch string)

	pool  *pgxpool.Pool // set by New once the pool is open
	state startstop.State
	stop  chan struct{}
	done  chan struct{}
}

func newTimelineWatch(log *slog.Logger, m *metrics.Metrics, overlap time.Duration, healing bool) *timelineWatch {
	// At least an hour: the window must reach back past the created time
	// of what was in flight at the crash, whatever RECONCILE_OVERLAP says.
	overlap = max(overlap, failoverMinOverlap)
	return &timelineWatch{log: log, metrics: m, window: store.FailoverWindow{Overlap: overlap, Margin: failoverWindowMargin},
		healing: healing, unknown: ratelog.Logger{Log: log}, stop: make(chan struct{}), done: make(chan struct{})}
}

// timelineEpoch is the part of the Redis keys bound to a timeline. It is
// empty on timeline 1, where a cluster starts, so that the keys of a
// deployment that never failed over are those of earlier versions.
func timelineEpoch(tl int64) string {
	if tl <= 1 {
		return ""
	}
	return fmt.Sprintf("t%d:", tl)
}

// subscribe calls f with the current epoch now and at every change.
func (w *timelineWatch) subscribe(f func(epoch string)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.subs = append(w.subs, f)
	f(timelineEpoch(w.current))
}

// hook is the pool's AfterConnect: the new connection is used only once
// the instance knows which timeline it reaches. A server that cannot say
// (one in recovery, a proxy that hides it) is logged and not refused.
func (w *timelineWatch) hook(ctx context.Context, conn *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, hookTimeout)
	defer cancel()
	tl, err := store.Timeline(ctx, conn)
	if err != nil {
		w.unknown.Warn("postgres timeline unknown on a new connection; a failover to it would not be noticed", "error", err)
		return nil
	}
	w.observe(ctx, conn, tl)
	return nil
}

// check reads the timeline on one of the pool's connections, and records
// it on the same one: observe holds the lock that a new connection's hook
// takes, so it must not wait for the pool.
func (w *timelineWatch) check(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx) // a new connection runs hook now, before the lock
	if err != nil {
		return err
	}
	defer conn.Release()
	tl, err := store.Timeline(ctx, conn.Conn())
	if err != nil {
		return err
	}
	return w.observe(ctx, conn.Conn(), tl)
}

// observe takes in that q reaches timeline tl: at a change it makes the
// subscribers forget, then records the timeline (and, at a rise, a
// failover) in Postgres once this process has not yet. A failure to
// record is returned, and retried at the next observation. A lower
// timeline is another cluster (pg_upgrade, a restore): it is followed
// too, so that a later promotion there is still a rise.
func (w *timelineWatch) observe(ctx context.Context, q store.Querier, tl int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if tl != w.current {
		switch {
		case w.current == 0:
		case tl > w.current:
			w.log.Warn(fmt.Sprintf("postgres failover detected: timeline %d -> %d; Redis done keys and recent ids from before are no longer trusted", w.current, tl),
				"old_timeline", w.current, "new_timeline", tl)
		default:
			w.log.Warn(fmt.Sprintf("postgres timeline went down %d -> %d: another cluster (pg_upgrade, a restore); Redis done keys and recent ids from before are no longer trusted", w.current, tl),
				"old_timeline", w.current, "new_timeline", tl)
		}
		w.current = tl
		w.metrics.PostgresTimeline(tl)
		for _, f := range w.subs {
			f(timelineEpoch(tl))
		}
	}
	if tl == w.recorded {
		return nil
	}
	f, failover, err := store.ObserveTimeline(ctx, q, tl, w.window)
	if err != nil {
		if store.IsUndefinedTable(err) {
			return nil // before the migrations: the start records it
		}
		w.log.Warn("recording the postgres timeline failed; retried", "timeline", tl, "error", err)
		return err
	}
	w.recorded = tl
	if failover {
		w.failover(f)
	}
	return nil
}

// failover tells the operator about a failover this process recorded.
func (w *timelineWatch) failover(f store.Failover) {
	w.metrics.Failover()
	msg := fmt.Sprintf("postgres failover detected: timeline %d -> %d; the commits the promoted server lacks are reconciled from Stripe's Events API over the window",
		f.OldTimeline, f.NewTimeline)
	if !w.healing {
		msg = fmt.Sprintf("postgres failover detected: timeline %d -> %d; without STRIPE_API_KEY the commits the promoted server lacks are not recovered: %s",
			f.OldTimeline, f.NewTimeline, asyncWarning)
	}
	w.log.Error(msg, "old_timeline", f.OldTimeline, "new_timeline", f.NewTimeline, "detected_at", f.DetectedAt,
		"window_start", f.WindowStart, "window_end", f.WindowEnd)
}

// Start records the timeline (a failover while no instance ran is found
// here) and, without STRIPE_API_KEY, warns when the primary's standbys are
// all asynchronous; then it reads the timeline every timelineCheckEvery,
// until Stop.
func (w *timelineWatch) Start(ctx context.Context) error {
	return w.state.Start(ctx, func(ctx context.Context) error {
		cctx, cancel := context.WithTimeout(ctx, startupTimeout)
		defer cancel()
		if err := w.check(cctx, w.pool); err != nil {
			// Not a reason to refuse webhooks: a server that hides its
			// timeline (a proxy, a managed service) only loses the
			// detection. The loop tries again each second.
			w.log.Warn("reading the postgres timeline failed; a failover is noticed only once it can be read", "error", err)
		}
		if !w.healing {
			if r, err := store.New(w.pool).Replication(cctx); err != nil {
				w.log.Warn("reading the replication state failed", "error", err)
			} else if r.OnlyAsynchronous() {
				w.log.Warn(asyncWarning, "standbys", r.Standbys, "synchronous_standby_names", "")
			}
		}
		go w.loop()
		return nil
	})
}

// Stop ends the loop.
func (w *timelineWatch) Stop(ctx context.Context) error {
	return w.state.Stop(ctx, func(ctx context.Context) error {
		close(w.stop)
		return startstop.Wait(ctx, w.done)
	})
}

func (w *timelineWatch) loop() {
	defer close(w.done)
	t := time.NewTicker(timelineCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), timelineCheckEvery)
		_ = w.check(ctx, w.pool) // unreachable now: the pool's users report it
		cancel()
	}
}
