package delivery

import (
	"context"
	"time"

	"github.com/oncehook/oncehook/pace"
)

// pacer holds a lane's deliveries to its destination's bounds: an
// in-flight slot of this instance (MaxInFlight), then a slot of the
// deployment's schedule (Rate). Waiting for either is not an attempt: the
// row stays pending, and the backlog shows as the oldest pending age.
type pacer struct {
	limiter *pace.Limiter // nil: no rate
	slots   chan struct{} // nil: no bound but the workers
}

func newPacer(cfg DispatcherConfig, dest Destination) (*pacer, error) {
	p := &pacer{}
	if dest.MaxInFlight > 0 && dest.MaxInFlight < dest.Workers {
		p.slots = make(chan struct{}, dest.MaxInFlight)
	}
	if dest.Rate.IsZero() {
		return p, nil
	}
	var instances func(context.Context) (int, error)
	if cfg.Instances != nil {
		instances = func(ctx context.Context) (int, error) { return cfg.Instances(ctx, dest.Name) }
	}
	var err error
	p.limiter, err = pace.New(pace.Config{Destination: dest.Name, Rate: dest.Rate, Redis: cfg.Redis, KeyPrefix: cfg.RedisKeyPrefix,
		Instances: instances, Logger: cfg.Logger, Metrics: cfg.Metrics})
	return p, err
}

// take waits for an in-flight slot, then for a slot of the schedule, and
// reports whether the delivery may start. It gives up, holding nothing,
// when neither comes before latest (the last start the delivery's lease
// allows), when stop is closed (the lane is stopping: only a slot free
// at once is taken) or when ctx ends. After true, done frees the
// in-flight slot.
func (p *pacer) take(ctx context.Context, latest time.Time, stop <-chan struct{}) bool {
	if p.slots != nil && !p.acquire(ctx, latest, stop) {
		return false
	}
	if p.limiter == nil || p.reserve(ctx, latest, stop) {
		return true
	}
	p.done()
	return false
}

// lateSlot is how late a worker may wake for its slot and still use it.
// One woken later (a busy CPU) takes a new slot instead: starting it
// would bunch its delivery with the next ones, past the rate.
const lateSlot = 10 * time.Millisecond

// reserve takes a slot of the schedule and waits for it.
func (p *pacer) reserve(ctx context.Context, latest time.Time, stop <-chan struct{}) bool {
	for {
		maxWait := time.Until(latest)
		select {
		case <-stop:
			maxWait = 0
		default:
		}
		wait, ok := p.limiter.Reserve(ctx, maxWait)
		if !ok {
			return false
		}
		due := time.Now().Add(wait)
		if wait > 0 && !sleep(ctx, wait, stop) {
			return false
		}
		if time.Since(due) <= lateSlot {
			return true
		}
	}
}

// acquire takes an in-flight slot.
func (p *pacer) acquire(ctx context.Context, latest time.Time, stop <-chan struct{}) bool {
	select {
	case p.slots <- struct{}{}:
		return true
	default:
	}
	timer := time.NewTimer(time.Until(latest))
	defer timer.Stop()
	select {
	case p.slots <- struct{}{}:
		return true
	case <-timer.C:
	case <-stop:
	case <-ctx.Done():
	}
	return false
}

// done frees the in-flight slot take took.
func (p *pacer) done() {
	if p.slots != nil {
		<-p.slots
	}
}

// sleep waits for d, and reports false if stop or ctx ended it first.
func sleep(ctx context.Context, d time.Duration, stop <-chan struct{}) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-stop:
	case <-ctx.Done():
	}
	return false
}
