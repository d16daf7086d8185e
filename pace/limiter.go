package pace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/ratelog"
)

// Config configures a Limiter.
type Config struct {
	// Destination names the destination, and its schedule in Redis. Required.
	Destination string
	// Rate is what the whole deployment may send the destination. Required.
	Rate Rate
	// Redis holds the deployment's schedule; nil: every instance keeps its
	// own, at Rate divided by Instances.
	Redis redis.UniversalClient
	// KeyPrefix starts the Redis key (the deduper's prefix, so that
	// deployments sharing a Redis keep apart). Required with Redis.
	KeyPrefix string
	// Instances counts the live instances serving the destination, this
	// one included. Without Redis, or while it fails, each instance takes
	// Rate divided by that count. It is asked at most every InstancesEvery,
	// and only while the local schedule is in use. Nil counts one.
	Instances func(ctx context.Context) (int, error)
	// InstancesEvery is how long a count of the instances is used.
	// Defaults to 10s.
	InstancesEvery time.Duration
	// RedisBackoff is how long the local schedule stands in after a Redis
	// error before Redis is asked again. Defaults to 5s.
	RedisBackoff time.Duration
	// Logger receives Redis errors and failed counts, rate-limited.
	// Defaults to slog.Default().
	Logger *slog.Logger
	// Metrics counts Redis errors (op "rate"); nil records nothing.
	Metrics *metrics.Metrics
}

// WithDefaults returns c with its zero fields filled.
func (c Config) WithDefaults() Config {
	if c.InstancesEvery <= 0 {
		c.InstancesEvery = 10 * time.Second
	}
	if c.RedisBackoff <= 0 {
		c.RedisBackoff = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Destination == "":
		return errors.New("pace: Config.Destination is required")
	case !c.Rate.valid():
		return fmt.Errorf("pace: destination %q: rate %d per %s is not between 1/h and %d/s", c.Destination, c.Rate.Count, c.Rate.Per, MaxPerSecond)
	case c.Redis != nil && c.KeyPrefix == "":
		return fmt.Errorf("pace: destination %q: a KeyPrefix is required with Redis", c.Destination)
	}
	return nil
}

// Limiter hands out a destination's delivery slots, one Rate.Interval
// apart across the deployment. It is safe for concurrent use.
type Limiter struct {
	cfg       Config
	key       string
	local     localSchedule
	downUntil atomic.Int64 // unix nanos: the local schedule stands in until then
	errs      ratelog.Logger

	counting  sync.Mutex // one count of the instances at a time
	instances atomic.Int64
	countedAt atomic.Int64 // unix nanos
}

// New returns a Limiter, or an error naming what is wrong with cfg.
func New(cfg Config) (*Limiter, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Limiter{cfg: cfg, key: scheduleKey(cfg.KeyPrefix, cfg.Destination),
		errs: ratelog.Logger{Log: cfg.Logger.With("destination", cfg.Destination)}}, nil
}

// Rate is the deployment's rate.
func (l *Limiter) Rate() Rate { return l.cfg.Rate }

// Reserve takes the destination's next delivery slot if it comes within
// maxWait, and returns how long to wait for it (0: go now). It reports
// false, having reserved nothing, when the next slot comes later, or when
// ctx ends. A Redis error is logged and the local schedule stands in.
func (l *Limiter) Reserve(ctx context.Context, maxWait time.Duration) (time.Duration, bool) {
	maxWait = max(0, maxWait)
	if l.cfg.Redis != nil && time.Now().UnixNano() >= l.downUntil.Load() {
		wait, ok, err := reserveRedis(ctx, l.cfg.Redis, l.key, l.cfg.Rate.Interval(), maxWait)
		if err == nil {
			return wait, ok
		}
		if ctx.Err() != nil {
			return 0, false
		}
		l.downUntil.Store(time.Now().Add(l.cfg.RedisBackoff).UnixNano())
		l.cfg.Metrics.RedisError("rate")
		l.errs.Warn("redis: taking a rate slot failed; this instance paces the destination alone at its share of the rate",
			"error", err, "retry_in", l.cfg.RedisBackoff)
	}
	interval := l.cfg.Rate.Interval() * time.Duration(l.share(ctx))
	return l.local.reserve(time.Now(), interval, maxWait)
}

// share is how many instances split the rate without Redis: the last
// count, asked again once it is InstancesEvery old. Until the first count
// returns, the callers wait for it.
func (l *Limiter) share(ctx context.Context) int64 {
	if l.cfg.Instances == nil {
		return 1
	}
	fresh := time.Now().UnixNano()-l.countedAt.Load() < int64(l.cfg.InstancesEvery)
	n := l.instances.Load()
	switch {
	case n > 0 && fresh:
		return n
	case n > 0 && !l.counting.TryLock():
		return n // another caller is counting
	case n == 0:
		l.counting.Lock()
	}
	defer l.counting.Unlock()
	if n := l.instances.Load(); n > 0 && time.Now().UnixNano()-l.countedAt.Load() < int64(l.cfg.InstancesEvery) {
		return n // counted while this caller waited
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	count, err := l.cfg.Instances(cctx)
	cancel()
	l.countedAt.Store(time.Now().UnixNano())
	switch {
	case err != nil && l.instances.Load() > 0:
		l.errs.Warn("counting the live instances failed; the rate's split stays as it was", "error", err)
	case err != nil:
		l.errs.Warn("counting the live instances failed; this instance takes the whole rate until a count succeeds", "error", err)
		l.instances.Store(1)
	default:
		l.instances.Store(int64(max(1, count)))
	}
	return l.instances.Load()
}
