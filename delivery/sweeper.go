package delivery

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
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
	// woken wakes the sweeper between the timed sweeps: for arrivals, or
	// for a sweep (full).
	woken chan struct{}
	full  atomic.Bool
	// arrivals are the order keys of deliveries the intake stored since
	// the last wake, whose heads are claimed by key (store.ClaimArrivals)
	// rather than by a sweep. Past arrivalsMax keys, a sweep takes them.
	mu       sync.Mutex
	arrivals map[string]struct{}
	// ctx bounds the claim under way; Stop cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	state  startstop.State
}

func newSweeper(cfg DispatcherConfig, l *lane) *sweeper {
	return &sweeper{cfg: cfg, store: store.New(cfg.Pool), l: l, errs: ratelog.Logger{Log: cfg.Logger.With("destination", l.dest.Name)}, quit: make(chan struct{}), woken: make(chan struct{}, 1),
		arrivals: map[string]struct{}{}}
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

// arrivalsMax bounds the order keys waiting for the next wake.
const arrivalsMax = 10_000

func (s *sweeper) run() {
	defer s.wg.Done()
	// Jitter keeps instances started together from sweeping in step.
	jitter := func() time.Duration { return s.cfg.SweepInterval/2 + rand.N(s.cfg.SweepInterval) }
	due := time.Now().Add(jitter())
	for {
		select {
		case <-s.quit:
			return
		case <-time.After(time.Until(due)):
		case <-s.woken:
		}
		s.claimArrivals()
		if !s.full.Swap(false) && time.Now().Before(due) {
			continue // woken for arrivals alone
		}
		due = time.Now().Add(jitter())
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
	s.full.Store(true)
	s.wake()
}

// arrived asks for a claim of key's head now: the intake stored a
// delivery of it.
func (s *sweeper) arrived(key string) {
	s.mu.Lock()
	if len(s.arrivals) < arrivalsMax {
		s.arrivals[key] = struct{}{}
	} else {
		s.full.Store(true)
	}
	s.mu.Unlock()
	s.wake()
}

func (s *sweeper) wake() {
	select {
	case s.woken <- struct{}{}:
	default:
	}
}

// claimArrivals claims the heads of the arrived keys, as many keys as the
// queue has free slots, and queues them; those the queue cannot take are
// given back. If the claim fails, a sweep takes them.
func (s *sweeper) claimArrivals() {
	limit := min(s.cfg.SweepBatch, s.l.freeSlots())
	s.mu.Lock()
	keys := make([]string, 0, min(limit, len(s.arrivals)))
	for k := range s.arrivals {
		if len(keys) == limit {
			break
		}
		keys = append(keys, k)
		delete(s.arrivals, k)
	}
	more := len(s.arrivals) > 0
	s.mu.Unlock()
	if len(keys) == 0 {
		return
	}
	if more {
		s.wake()
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	next, err := s.store.ClaimArrivals(ctx, s.l.dest.Name, keys, s.cfg.Lease)
	if err != nil {
		s.cfg.Metrics.PostgresError("claim arrivals", err)
		s.errs.Warn("sweeper: claiming the heads of arrived order keys failed; a sweep takes them", "error", err)
		s.full.Store(true)
		return
	}
	if left := s.l.d.handOver(start, next); len(left) > 0 {
		if err := s.store.GiveBack(ctx, left); err != nil {
			s.cfg.Metrics.PostgresError("give back", err)
			s.errs.Warn("sweeper: giving back arrived deliveries the queue had no room for failed; they go when their lease ends", "error", err)
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
