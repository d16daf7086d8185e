package delivery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/startstop"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/store"
)

// Dispatcher delivers events to their destinations: those the intake
// hands over, and those its sweepers claim from Postgres (due retries, and
// deliveries whose owner died). Each destination is a lane of its own,
// with a queue bounded in events and in bytes; an event that does not fit
// stays pending.
type Dispatcher struct {
	cfg     DispatcherConfig
	routes  *route.Table
	lanes   []*lane
	results *completer
	adopter *adopter
	ctx     context.Context // cancelled to abort deliveries at the end of Stop
	cancel  context.CancelFunc
	state   startstop.State
}

// NewDispatcher builds the lanes and their sweepers; Start starts them and
// Stop stops them. Events enqueued before Start wait in the lanes' queues.
func NewDispatcher(cfg DispatcherConfig) (*Dispatcher, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	dests := make([]route.Destination, len(cfg.Destinations))
	for i, d := range cfg.Destinations {
		dests[i] = route.Destination{Name: d.Name, Filter: d.Filter, OrderKey: d.OrderKey}
		cfg.Metrics.Destination(d.Name)
	}
	routes, err := route.NewTable(dests)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dispatcher{cfg: cfg, routes: routes, results: newCompleter(cfg), ctx: ctx, cancel: cancel}
	share := max(1, cfg.QueueMaxBytes/int64(len(cfg.Destinations)))
	for _, dest := range cfg.Destinations {
		l, err := newLane(d, dest, share)
		if err != nil {
			cancel()
			return nil, err
		}
		d.lanes = append(d.lanes, l)
	}
	d.adopter = newAdopter(cfg)
	d.results.wake = d.wake
	d.results.handOver = d.handOver
	return d, nil
}

// Start starts the result writer, every lane's workers and sweeper, and
// the adopter. They run until Stop: ctx's end does not stop them, as Stop
// drains them within its own deadline. A second Start does nothing; a
// Start after Stop returns startstop.ErrStopped.
func (d *Dispatcher) Start(ctx context.Context) error {
	return d.state.Start(ctx, func(ctx context.Context) error {
		if err := d.results.Start(ctx); err != nil {
			return err
		}
		for _, l := range d.lanes {
			if err := l.Start(ctx); err != nil {
				return err
			}
		}
		return d.adopter.Start(ctx)
	})
}

// Routes is the destination table: the intake stores one delivery row per
// destination it matches (dedup.Config.Routes).
func (d *Dispatcher) Routes() *route.Table { return d.routes }

// Enqueue hands an event the intake just stored to the lanes of the
// destinations it matches, without blocking. It reports false when a lane
// took no hand-off (its queue full in events or bytes, or stopping); that
// delivery stays pending and a sweeper takes it once its lease ends. A
// delivery with an order key was stored under a lease only held: its
// lane's sweeper finds whether it may go first (store.ClaimArrivals),
// which keeps its key's order; one there is no room to hold has its lease
// given back, so that its key does not wait for the lease's end.
func (d *Dispatcher) Enqueue(ev *event.Event, lease store.Lease) bool {
	j := job{ev: ev, lease: lease.Until, leaseUntil: lease.Start.Add(lease.Length - leaseMargin)}
	ok := true
	for _, l := range d.lanes {
		if !l.dest.Filter.Match(ev.Type, ev.Livemode) {
			continue
		}
		if key := l.dest.OrderKey.Lookup(ev.Payload); key != "" { // as store.EventBatch.Add read it
			keyed := *ev // the key is this destination's
			keyed.OrderKey = key
			kj := j
			kj.ev = &keyed
			if !l.sweeper.arrived(kj) {
				ok = false
			}
			continue
		}
		if !l.offer(j) {
			ok = false
		}
	}
	return ok
}

// wake has the sweepers of dests claim now: a delivery of an order key
// finished there, and the next one of its key may be due.
func (d *Dispatcher) wake(dests map[string]bool) {
	for _, l := range d.lanes {
		if dests[l.dest.Name] {
			l.sweeper.kick()
		}
	}
}

// handOver queues the next deliveries of finished order keys that the
// result writer claimed for this instance, leased from start, in their
// lanes; it returns those a lane could not take (full, or stopping).
func (d *Dispatcher) handOver(start time.Time, next []store.Next) (left []store.Next) {
	leaseUntil := start.Add(d.cfg.Lease - leaseMargin)
	for _, n := range next {
		l := d.lane(n.Destination)
		if l == nil || !l.offer(job{ev: n.Event, lease: n.Lease, leaseUntil: leaseUntil}) {
			left = append(left, n)
		}
	}
	return left
}

// lane returns the lane of destination name, nil if none.
func (d *Dispatcher) lane(name string) *lane {
	for _, l := range d.lanes {
		if l.dest.Name == name {
			return l
		}
	}
	return nil
}

// QueueDepth is the number of events waiting for a worker, over all
// destinations.
func (d *Dispatcher) QueueDepth() int {
	n := 0
	for _, l := range d.lanes {
		n += len(l.queue)
	}
	return n
}

// QueueBytes is the payload bytes held by queued events, deliveries under
// way and held arrivals, over all destinations.
func (d *Dispatcher) QueueBytes() int64 {
	var n int64
	for _, l := range d.lanes {
		n += l.bytes.Load()
	}
	return n
}

// DestinationQueue is one destination's queue depth and bytes.
func (d *Dispatcher) DestinationQueue(name string) (depth int, bytes int64, ok bool) {
	for _, l := range d.lanes {
		if l.dest.Name == name {
			return len(l.queue), l.bytes.Load(), true
		}
	}
	return 0, 0, false
}

// stopReserve is the share of Stop's time kept for writing the last results
// and closing the sinks after the workers are aborted.
func stopReserve(ctx context.Context) time.Duration {
	deadline, ok := ctx.Deadline()
	if !ok {
		return 0
	}
	return min(time.Until(deadline)/4, 2*time.Second)
}

// Stop takes no more events, stops the sweepers, lets the workers drain
// the queues until ctx is nearly done, then aborts what is left (it stays
// pending in Postgres), writes the last results and closes the sinks.
// Every step ends by ctx's deadline, even with a sink that does not
// return. Stop before Start and a second Stop do nothing (a second one
// returns the first one's error); a Dispatcher that never started keeps
// its sinks open.
func (d *Dispatcher) Stop(ctx context.Context) error {
	return d.state.Stop(ctx, d.stop)
}

func (d *Dispatcher) stop(ctx context.Context) error {
	deadline, hasDeadline := ctx.Deadline()
	drainCtx, cancelDrain := context.WithDeadline(ctx, deadline.Add(-stopReserve(ctx)))
	if !hasDeadline {
		cancelDrain()
		drainCtx, cancelDrain = context.WithCancel(ctx)
	}
	defer cancelDrain()
	_ = d.adopter.Stop(drainCtx)
	// The lanes stop side by side, each its sweeper, then its queue.
	drained := make(chan error, len(d.lanes))
	for _, l := range d.lanes {
		go func() { drained <- l.Stop(drainCtx) }()
	}
	var stopErr error
	for range d.lanes {
		if err := <-drained; err != nil && stopErr == nil {
			d.cancel()
			stopErr = errors.New("delivery: shutdown timeout reached; undelivered events stay pending")
		}
	}
	// Prompt once cancelled: calls under way return at once, or are abandoned.
	for _, l := range d.lanes {
		l.workers.Wait()
	}
	d.cancel()
	if !hasDeadline {
		deadline = time.Now().Add(completerStopTimeout)
	}
	// The last results are written under a context of their own, which
	// ends at deadline and not before (ctx may be cancelled already).
	rctx, cancelResults := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancelResults()
	_ = d.results.Stop(rctx)
	if err := d.closeSinks(deadline); err != nil && stopErr == nil {
		stopErr = err
	}
	return stopErr
}

// closeSinks closes every destination's sink at once, waiting until
// deadline.
func (d *Dispatcher) closeSinks(deadline time.Time) error {
	closed := make(chan error, len(d.lanes))
	for _, l := range d.lanes {
		go func() {
			if err := l.dest.Sink.Close(); err != nil {
				closed <- fmt.Errorf("destination %s: %w", l.dest.Name, err)
				return
			}
			closed <- nil
		}()
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	var errs []error
	for range d.lanes {
		select {
		case err := <-closed:
			errs = append(errs, err)
		case <-timer.C:
			return errors.New("delivery: closing the sinks did not finish by the shutdown deadline")
		}
	}
	return errors.Join(errs...)
}
