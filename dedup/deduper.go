package dedup

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/startstop"
	"github.com/oncehook/oncehook/store"
)

// Outcome is the answer for one delivery of an event.
type Outcome int

const (
	// Accepted: this delivery stored the event; it is answered "accepted"
	// once per event id.
	Accepted Outcome = iota + 1
	// Duplicate: the event was stored by an earlier delivery.
	Duplicate
)

func (o Outcome) String() string {
	switch o {
	case Accepted:
		return "accepted"
	case Duplicate:
		return "duplicate"
	}
	return "unknown"
}

// Path is the way a delivery was decided.
type Path string

const (
	// PathRecent: this process stored the event a moment ago
	// (Config.RecentIDs); neither Redis nor Postgres was asked.
	PathRecent Path = "recent"
	// PathRedisDone: Redis already held "done"; Postgres was not asked.
	PathRedisDone Path = "redis_done"
	// PathRedisAwait: another process held the claim; this delivery waited
	// for its "done" in Redis, without asking Postgres.
	PathRedisAwait Path = "redis_await"
	// PathInflight: another delivery in this process decided it.
	PathInflight Path = "inflight_wait"
	// PathPostgres: decided by the Postgres insert, after a Redis claim or
	// with another process's claim in place.
	PathPostgres Path = "postgres"
	// PathRedisFallback: Redis failed or is bypassed; Postgres alone decided.
	PathRedisFallback Path = "redis_fallback"
	// PathPostgresOnly: no Redis is configured.
	PathPostgresOnly Path = "postgres_only"
)

// Result is what StoreOnce decided.
type Result struct {
	Outcome Outcome
	Path    Path
	// Lease, for Accepted, is this instance's hold on the new row's delivery.
	Lease store.Lease
}

var (
	// ErrUnavailable means Postgres could not store the event; the delivery
	// must be answered with a retryable 503.
	ErrUnavailable = errors.New("postgres unavailable")
	// ErrOverloaded means the intake queue is full; answer 503 as well.
	ErrOverloaded = errors.New("intake over its bound")
)

// Deduper decides, once per event id across every instance, whether a
// delivery is new. Postgres is the record; Redis only saves round trips.
type Deduper struct {
	redis   *redisClaims // nil without Redis
	writer  *batchWriter
	flights flights
	recent  *recentIDs // nil: Config.RecentIDs is 0
	// epoch counts the Forgets: a decision that spans one remembers
	// nothing of the event it stored (see Forget).
	epoch   atomic.Uint64
	metrics *metrics.Metrics
	state   startstop.State
}

// New builds a Deduper; Start starts its batch writer (before, StoreOnce
// answers ErrUnavailable) and Stop stops it.
func New(cfg Config) (*Deduper, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Redis != nil && cfg.KeyPrefix == "" {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.CommitTimeout)
		ns, err := store.New(cfg.Pool).Namespace(ctx)
		cancel()
		if err != nil {
			return nil, err
		}
		cfg.KeyPrefix = KeyPrefixFor(ns)
	}
	d := &Deduper{writer: newBatchWriter(cfg), flights: flights{m: make(map[string]*flight)}, metrics: cfg.Metrics,
		recent: newRecentIDs(cfg.RecentIDs, cfg.DoneTTL)}
	if cfg.Redis != nil {
		d.redis = newRedisClaims(cfg)
	}
	return d, nil
}

// StoreOnce stores ev unless it is already stored and says which it was. An
// error wraps ErrUnavailable or is ErrOverloaded; then nothing in Redis
// claims the event, so a retry is judged afresh.
func (d *Deduper) StoreOnce(ctx context.Context, ev *event.Event) (Result, error) {
	if d.Recent([]byte(ev.ID)) { // not kept: no copy for a short id
		return Result{Outcome: Duplicate, Path: PathRecent}, nil
	}
	fl, leader := d.flights.begin(ev.ID)
	if !leader {
		<-fl.done // bounded by the leader's Redis claim and wait (awaitLimit), and CommitTimeout
		if fl.err != nil {
			return Result{}, fl.err
		}
		d.metrics.Decision(string(PathInflight), Duplicate.String())
		return Result{Outcome: Duplicate, Path: PathInflight}, nil
	}
	res, err := d.decide(ctx, ev)
	d.flights.end(ev.ID, fl, res, err)
	if err == nil {
		d.metrics.Decision(string(res.Path), res.Outcome.String())
	}
	return res, err
}

// Recent reports whether this process stored the event id a moment ago
// (Config.RecentIDs), and if so counts the delivery as a duplicate decided
// on PathRecent: then the caller may answer it without StoreOnce.
func (d *Deduper) Recent(id []byte) bool {
	if !d.recent.has(id, time.Now()) {
		return false
	}
	d.metrics.Decision(string(PathRecent), Duplicate.String())
	return true
}

func (d *Deduper) decide(ctx context.Context, ev *event.Event) (Result, error) {
	epoch := d.epoch.Load()
	path, holdsClaim := PathPostgresOnly, false
	if d.redis != nil {
		path = PathRedisFallback
		if d.redis.available() {
			start := time.Now()
			state, err := d.redis.claim(ctx, ev.ID)
			awaited := state == pendingElsewhere && err == nil && d.redis.awaitDone(ctx, ev.ID)
			d.metrics.Stage(metrics.StageRedis, start)
			// A Forget meanwhile: the answer may come from a key of the
			// epoch before, which may not vouch for the row; Postgres
			// decides.
			forgotten := d.epoch.Load() != epoch
			switch {
			case err != nil:
			case (state == alreadyDone || awaited) && forgotten:
				path = PathPostgres
			case state == alreadyDone:
				return Result{Outcome: Duplicate, Path: PathRedisDone}, nil
			case awaited:
				return Result{Outcome: Duplicate, Path: PathRedisAwait}, nil
			default:
				path, holdsClaim = PathPostgres, state == claimed
			}
		}
	}
	start := time.Now()
	inserted, lease, err := d.writer.insert(ctx, ev)
	d.metrics.Stage(metrics.StageCommit, start)
	if err != nil {
		if holdsClaim {
			d.redis.release(context.WithoutCancel(ctx), ev.ID)
		}
		return Result{}, err
	}
	// A Forget meanwhile: the row may be on the server that was failed
	// over from, so neither Redis nor memory may vouch for it.
	remember := d.epoch.Load() == epoch
	if path == PathPostgres && remember {
		d.redis.markDone(context.WithoutCancel(ctx), ev.ID)
	}
	if inserted {
		if remember {
			d.recent.add(ev.ID, lease.Start) // before the flight ends, so no copy misses both
		}
		return Result{Outcome: Accepted, Path: path, Lease: lease}, nil
	}
	return Result{Outcome: Duplicate, Path: path}, nil
}

// Forget stops trusting what this process remembers of the events it
// decided: Postgres failed over, and the promoted server may lack rows
// that Redis's "done" keys and the recent ids vouch for. From now on the
// Redis keys carry epoch after the prefix (keys under another epoch are
// not read again, and expire), and the recent ids are dropped. A decision
// under way when Forget is called marks nothing done and remembers
// nothing. Every instance calls it with the same epoch for the same
// server (see internal/service), so that they share claims again.
func (d *Deduper) Forget(epoch string) {
	// The keys and the recent ids first, then the count: a decision that
	// loaded the count before it sees the change at its end.
	if d.redis != nil {
		d.redis.epoch.Store(&epoch)
	}
	d.recent.forget()
	d.epoch.Add(1)
}

// Stats counts the insert statements run and the rows sent in them; their
// ratio is the mean batch size.
type Stats struct {
	Batches, Rows uint64
}

// Stats returns the counts since New.
func (d *Deduper) Stats() Stats {
	return Stats{Batches: d.writer.batches.Load(), Rows: d.writer.rows.Load()}
}

// Start starts the batch writer and the Redis pipelines. They run until
// Stop: ctx's end does not stop them. A second Start does nothing; a Start
// after Stop returns startstop.ErrStopped.
func (d *Deduper) Start(ctx context.Context) error {
	return d.state.Start(ctx, func(context.Context) error {
		if d.redis != nil {
			d.redis.start()
		}
		d.writer.start()
		return nil
	})
}

// Stop flushes queued inserts and stops the batch writer, then the Redis
// pipelines; later Checks answer ErrUnavailable. Call it after the HTTP
// server has stopped. The last batches run under the writer's own
// timeouts, never under ctx, which only bounds the wait: once ctx ends,
// Stop returns its error and the flush goes on behind. Stop before Start
// and a second Stop do nothing.
func (d *Deduper) Stop(ctx context.Context) error {
	return d.state.Stop(ctx, func(ctx context.Context) error {
		done := make(chan struct{})
		go func() {
			defer close(done)
			d.writer.close()
			if d.redis != nil {
				d.redis.close()
			}
		}()
		return startstop.Wait(ctx, done)
	})
}
