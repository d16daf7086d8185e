package delivery

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/oncehook/oncehook/internal/ratelog"
	"github.com/oncehook/oncehook/internal/startstop"
	"github.com/oncehook/oncehook/store"
)

// sweeper claims one destination's due deliveries into its lane's queue,
// never more than the queue has room for.
type sweeper struct {
	cfg   DispatcherConfig
	store *store.Store
	l     *lane
	errs  ratelog.Logger
	quit  chan struct{}
	// woken asks for a sweep now, between the timed ones.
	woken chan struct{}
	// ctx bounds the claim under way; Stop cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	state  startstop.State
}

func newSweeper(cfg DispatcherConfig, l *lane) *sweeper {
	return &sweeper{cfg: cfg, store: store.New(cfg.Pool), l: l, errs: ratelog.Logger{Log: cfg.Logger.With("destination", l.dest.Name)}, quit: make(chan struct{}), woken: make(chan struct{}, 1)}
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
		case <-s.woken:
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

// kick asks for a sweep now without waiting; kicks while one is pending
// are one.
func (s *sweeper) kick() {
	select {
	case s.woken <- struct{}{}:
	default:
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
	claimed, err := s.store.Claim(ctx, store.ClaimParams{Destination: s.l.dest.Name, Limit: limit, RoomBytes: room, Lease: s.cfg.Lease})
	if err != nil {
		s.cfg.Metrics.PostgresError("sweep", err)
		s.errs.Warn("sweeper: claiming due events failed; the rows are retried after their lease", "error", err)
		return false
	}
	leaseUntil := start.Add(s.cfg.Lease - leaseMargin)
	jobs := make([]job, len(claimed))
	for i, c := range claimed {
		jobs[i] = job{ev: c.Event, lease: c.Lease, leaseUntil: leaseUntil}
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
