package delivery

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oncehook/oncehook/event"
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
	// arrivals are the deliveries with an order key the intake stored
	// since the last wake, under a lease only held: store.ClaimArrivals
	// decides whether they go. unheld are those there was no room to
	// hold (payload bytes, arrivalsMax): their leases are given back at
	// the next wake, so that they do not hold up their keys. Once closed,
	// the sweeper holds none.
	mu       sync.Mutex
	arrivals []job
	unheld   []store.Next
	closed   bool
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

// arrivalsGather is how long a wake waits before deciding the arrivals
// held: each event of an intake batch arrives from its own request, and
// deciding them together takes one round trip instead of several.
const arrivalsGather = time.Millisecond

// arrivalsMax bounds the arrivals waiting for the next wake, and
// unheldMax those waiting to be given back; one past both keeps its key
// waiting until its lease ends.
const (
	arrivalsMax = 10_000
	unheldMax   = 100_000
)

func (s *sweeper) run() {
	defer s.wg.Done()
	// Jitter keeps instances started together from sweeping in step.
	jitter := func() time.Duration { return s.cfg.SweepInterval/2 + rand.N(s.cfg.SweepInterval) }
	// At the end, the held arrivals that go are queued before the lane
	// drains; the rest are released for the other instances.
	finish := func() {
		s.claimArrivals()
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.claimArrivals()
	}
	due := time.Now().Add(jitter())
	for {
		select {
		case <-s.quit:
			finish()
			return
		case <-time.After(time.Until(due)):
		case <-s.woken:
			// The first arrival of an intake batch wakes the sweeper;
			// the rest of the batch follows within moments, and is
			// decided with it.
			time.Sleep(arrivalsGather)
		}
		s.claimArrivals()
		if !s.full.Swap(false) && time.Now().Before(due) {
			continue // woken for arrivals alone
		}
		due = time.Now().Add(jitter())
		for s.sweep() { // a full batch: more may be due
			s.claimArrivals()
			select {
			case <-s.quit:
				finish()
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

// arrived holds j, a delivery with an order key (j.ev.OrderKey) the
// intake just stored, for the next wake's decision. A held arrival takes
// its bytes of the lane's share, as a queued job does. It reports false if
// there was no room: the delivery's lease is then given back, and it goes
// by a later claim.
func (s *sweeper) arrived(j job) bool {
	size := int64(len(j.ev.Payload))
	s.mu.Lock()
	ok := !s.closed && len(s.arrivals) < arrivalsMax && s.l.reserve(size)
	switch {
	case ok:
		s.arrivals = append(s.arrivals, j)
	case !s.closed && len(s.unheld) < unheldMax:
		s.unheld = append(s.unheld, s.givenBack(&event.Event{ID: j.ev.ID}, j.lease))
	}
	s.mu.Unlock()
	s.wake()
	return ok
}

func (s *sweeper) wake() {
	select {
	case s.woken <- struct{}{}:
	default:
	}
}

// givenBack is a delivery of this lane to give back (store.GiveBack).
func (s *sweeper) givenBack(ev *event.Event, lease time.Time) store.Next {
	return store.Next{Destination: s.l.dest.Name, Claimed: store.Claimed{Event: ev, Lease: lease}}
}

// claimArrivals decides every held arrival, a batch at a time, and gives
// back the leases of those there was no room to hold.
func (s *sweeper) claimArrivals() {
	for s.decideArrivals() {
	}
}

// decideArrivals decides one batch of held arrivals and queues those that
// go and the heads leased in their stead; what the queue cannot take is
// given back, and so is every arrival the decision did not reach if it
// fails. It reports whether more arrivals wait.
func (s *sweeper) decideArrivals() (more bool) {
	s.mu.Lock()
	n := min(s.cfg.SweepBatch, len(s.arrivals))
	held := slices.Clone(s.arrivals[:n])
	s.arrivals = slices.Delete(s.arrivals, 0, n)
	left := s.unheld
	s.unheld = nil
	more = len(s.arrivals) > 0
	s.mu.Unlock()
	if n == 0 && len(left) == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	if n > 0 {
		arrivals := make([]store.Arrival, n)
		for i, j := range held {
			arrivals[i] = store.Arrival{EventID: j.ev.ID, Key: j.ev.OrderKey, Lease: j.lease}
		}
		start := time.Now()
		keep, next, err := s.store.ClaimArrivals(ctx, s.l.dest.Name, arrivals, s.cfg.Lease)
		if err != nil {
			s.cfg.Metrics.PostgresError("claim arrivals", err)
			s.errs.Warn("sweeper: deciding arrived deliveries of order keys failed; giving back those not decided", "error", err)
		}
		for _, j := range held {
			kept := slices.Contains(keep, j.ev.ID)
			switch {
			case kept && s.l.offerReserved(j):
			case kept || err != nil: // no room in the queue, or not decided
				s.l.release(int64(len(j.ev.Payload)))
				left = append(left, s.givenBack(j.ev, j.lease))
			default: // released
				s.l.release(int64(len(j.ev.Payload)))
			}
		}
		left = append(left, s.l.d.handOver(start, next)...)
	}
	if len(left) > 0 {
		if err := s.store.GiveBack(ctx, left); err != nil {
			s.cfg.Metrics.PostgresError("give back", err)
			s.errs.Warn("sweeper: giving back held deliveries failed; they go when their lease ends", "error", err)
		}
	}
	return more
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
