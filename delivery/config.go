package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/pace"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/sink"
)

// Destination is one place events are delivered to, with its own queue,
// workers, retries and dead letters. Zero fields take the
// DispatcherConfig's value.
type Destination struct {
	// Name is the destination's name in the delivery rows. Required.
	Name string
	// Filter selects its events; the zero Filter takes every event.
	Filter route.Filter
	// Sink receives its events. Required.
	Sink sink.Sink
	// Workers is its number of delivery goroutines.
	Workers int
	// DeliveryTimeout bounds one Deliver call.
	DeliveryTimeout time.Duration
	// MaxAttempts is how many failed attempts make a delivery dead.
	MaxAttempts int
	// OrderKey, when set, is the path of its events' order key: the
	// deliveries of one key go one at a time, across every instance, in
	// Stripe created order; events without the key go unordered.
	OrderKey event.KeyPath
	// Rate bounds the deliveries the whole deployment sends it (see
	// package pace); a delivery waits for its slot without counting an
	// attempt. The zero Rate is no limit.
	Rate pace.Rate
	// MaxInFlight bounds this instance's deliveries to it under way at
	// once, those waiting for their Rate slot included. 0 is no bound but
	// Workers.
	MaxInFlight int
}

// DispatcherConfig configures a Dispatcher.
type DispatcherConfig struct {
	// Pool holds stripe_webhook_deliveries, where delivery state is kept. Required.
	Pool *pgxpool.Pool
	// Destinations are delivered to independently. Empty means one
	// destination, route.DefaultName, taking every event to Sink.
	Destinations []Destination
	// Sink is the default destination's sink when Destinations is empty.
	Sink sink.Sink
	// Workers is the number of delivery goroutines of each destination.
	// Defaults to 32.
	Workers int
	// QueueSize bounds the events in each destination's in-process
	// hand-off. Defaults to 10000.
	QueueSize int
	// QueueMaxBytes bounds the payload bytes held by queued events and
	// deliveries under way, shared equally between the destinations; a
	// sweeper may pass its share by one event, so that a large one is never
	// stuck. An event that does not fit stays pending in Postgres for the
	// sweeper. Defaults to 64 MiB.
	QueueMaxBytes int64
	// DeliveryTimeout bounds one Deliver call. Defaults to 10s.
	DeliveryTimeout time.Duration
	// MaxAttempts is how many failed attempts make a delivery dead, at most
	// MaxAttemptsLimit. Defaults to 15.
	MaxAttempts int
	// RetryBase is the delay after the first failure; each further failure
	// doubles it, up to RetryMax, with jitter of up to half. Defaults to 1s.
	RetryBase time.Duration
	// RetryMax caps the delay between attempts. Defaults to 1h.
	RetryMax time.Duration
	// Lease is how long the sweeper's claims last: an instance owns a row
	// it claimed for this long, and another instance's sweeper takes the
	// row only after it. Rows handed over by the intake come with their own
	// lease (store.Lease). Defaults to the larger of 1m and 3 × the longest
	// DeliveryTimeout.
	Lease time.Duration
	// SweepInterval is how often due and orphaned rows are claimed. Defaults to 1s.
	SweepInterval time.Duration
	// SweepBatch bounds the rows claimed at once. Defaults to 200.
	SweepBatch int
	// FlushInterval is how often delivery results are written. Defaults to 20ms.
	FlushInterval time.Duration
	// MaxBatch bounds the results of one write. Defaults to 1000.
	MaxBatch int
	// Redis holds the schedules of destinations with a Rate, shared by the
	// deployment; nil: each instance paces alone, at its share (Instances).
	Redis redis.UniversalClient
	// RedisKeyPrefix starts those schedules' keys. Required with Redis
	// and a destination with a Rate.
	RedisKeyPrefix string
	// Instances counts the live instances serving a destination, this one
	// included: without Redis, or while it fails, each takes that share of
	// the destination's Rate. Asked every 10s at most, only then. Nil
	// counts one.
	Instances func(ctx context.Context, destination string) (int, error)
	// Instance names this process in the delivery history. Defaults to host:pid.
	Instance string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics counts deliveries and errors; nil records nothing.
	Metrics *metrics.Metrics
}

// WithDefaults returns a copy of c with every zero field set to its default.
func (c DispatcherConfig) WithDefaults() DispatcherConfig {
	if c.Workers == 0 {
		c.Workers = 32
	}
	if c.QueueSize == 0 {
		c.QueueSize = 10000
	}
	if c.QueueMaxBytes == 0 {
		c.QueueMaxBytes = DefaultQueueMaxBytes
	}
	if c.DeliveryTimeout == 0 {
		c.DeliveryTimeout = 10 * time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 15
	}
	if len(c.Destinations) == 0 {
		c.Destinations = []Destination{{Name: route.DefaultName, Sink: c.Sink}}
	} else {
		c.Destinations = append([]Destination(nil), c.Destinations...)
	}
	longest := time.Duration(0)
	for i := range c.Destinations {
		d := &c.Destinations[i]
		if d.Workers == 0 {
			d.Workers = c.Workers
		}
		if d.DeliveryTimeout == 0 {
			d.DeliveryTimeout = c.DeliveryTimeout
		}
		if d.MaxAttempts == 0 {
			d.MaxAttempts = c.MaxAttempts
		}
		longest = max(longest, d.DeliveryTimeout)
	}
	if c.RetryBase == 0 {
		c.RetryBase = time.Second
	}
	if c.RetryMax == 0 {
		c.RetryMax = time.Hour
	}
	if c.Lease == 0 {
		c.Lease = DefaultLease(longest)
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = time.Second
	}
	if c.SweepBatch == 0 {
		c.SweepBatch = 200
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = 20 * time.Millisecond
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 1000
	}
	if c.Instance == "" {
		host, _ := os.Hostname()
		c.Instance = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// DefaultQueueMaxBytes is QueueMaxBytes's default.
const DefaultQueueMaxBytes = 64 << 20

// MaxAttemptsLimit bounds MaxAttempts: past a thousand failures an event is
// better dead and replayed by hand than retried hourly for six weeks.
const MaxAttemptsLimit = 1000

// DefaultLease is the lease for a delivery timeout: the larger of 1m and
// 3 × timeout.
func DefaultLease(deliveryTimeout time.Duration) time.Duration {
	return max(time.Minute, 3*deliveryTimeout)
}

// leaseMargin is kept free at the end of a lease: a worker does not start a
// delivery that could still run then, because the row may be re-claimed.
const leaseMargin = 5 * time.Second

func (c DispatcherConfig) validate() error {
	switch {
	case c.Pool == nil:
		return errors.New("delivery: DispatcherConfig.Pool is required")
	case c.QueueSize < 1 || c.QueueMaxBytes < 1 || c.MaxBatch < 1 || c.SweepBatch < 1:
		return errors.New("delivery: QueueSize, QueueMaxBytes, MaxBatch and SweepBatch must be positive")
	case c.FlushInterval <= 0 || c.RetryBase <= 0 || c.RetryMax < c.RetryBase || c.SweepInterval <= 0:
		return errors.New("delivery: FlushInterval, RetryBase and SweepInterval must be positive, RetryMax at least RetryBase")
	}
	dests := make([]route.Destination, len(c.Destinations))
	for i, d := range c.Destinations {
		dests[i] = route.Destination{Name: d.Name, Filter: d.Filter, OrderKey: d.OrderKey}
		switch {
		case d.Sink == nil:
			return fmt.Errorf("delivery: destination %q has no Sink", d.Name)
		case d.Workers < 1 || d.MaxAttempts < 1 || d.DeliveryTimeout <= 0:
			return fmt.Errorf("delivery: destination %q: Workers, MaxAttempts and DeliveryTimeout must be positive", d.Name)
		case d.MaxInFlight < 0:
			return fmt.Errorf("delivery: destination %q: MaxInFlight %d is negative", d.Name, d.MaxInFlight)
		case !d.Rate.IsZero() && c.Redis != nil && c.RedisKeyPrefix == "":
			return fmt.Errorf("delivery: destination %q has a Rate and Redis is set, but RedisKeyPrefix is empty", d.Name)
		case d.MaxAttempts > MaxAttemptsLimit:
			return fmt.Errorf("delivery: destination %q: MaxAttempts %d is more than %d", d.Name, d.MaxAttempts, MaxAttemptsLimit)
		case c.Lease < d.DeliveryTimeout+2*leaseMargin:
			return fmt.Errorf("delivery: Lease %s must exceed destination %q's DeliveryTimeout by at least %s", c.Lease, d.Name, 2*leaseMargin)
		}
	}
	_, err := route.NewTable(dests)
	return err
}
