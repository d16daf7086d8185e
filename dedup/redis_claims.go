package dedup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/ratelog"
)

// doneValue marks an event id whose row is committed in Postgres. Any other
// value is an in-flight claim: pendingPrefix plus the claiming process's token.
const (
	doneValue     = "done"
	pendingPrefix = "pending:"
)

type claimState int

const (
	claimed          claimState = iota + 1 // this delivery holds the claim
	alreadyDone                            // the row is committed
	pendingElsewhere                       // another delivery holds the claim
)

// releaseScript deletes a claim only while it is still ours, so that a "done"
// written meanwhile is never removed.
// KEYS[1] the event key; ARGV[1] our pending value. Returns 1 if deleted, else 0.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0`)

// redisClaims is the Redis fast path. After an error it stands aside for
// backoff, so a dead or slow Redis costs one timeout per backoff, not per request.
type redisClaims struct {
	rdb       redis.UniversalClient
	prefix    string
	pending   string
	claimTTL  time.Duration
	doneTTL   time.Duration
	backoff   time.Duration
	downUntil atomic.Int64 // unix nanos
	errs      ratelog.Logger
	metrics   *metrics.Metrics
}

func newRedisClaims(cfg Config) *redisClaims {
	return &redisClaims{
		rdb:      cfg.Redis,
		prefix:   cfg.KeyPrefix,
		pending:  pendingPrefix + newToken(),
		claimTTL: cfg.ClaimTTL,
		doneTTL:  cfg.DoneTTL,
		backoff:  cfg.RedisBackoff,
		errs:     ratelog.Logger{Log: cfg.Logger},
		metrics:  cfg.Metrics,
	}
}

// key is the one place an event's Redis key is made.
func (c *redisClaims) key(id string) string { return c.prefix + "evt:" + id }

// available reports whether Redis is worth asking now.
func (c *redisClaims) available() bool { return time.Now().UnixNano() >= c.downUntil.Load() }

func (c *redisClaims) failed(op string, err error) {
	c.downUntil.Store(time.Now().Add(c.backoff).UnixNano())
	c.metrics.RedisError(op)
	c.errs.Warn("redis "+op+" failed; deciding with Postgres alone", "error", err)
}

// claim runs SET key pending NX GET EX claimTTL: one round trip that either
// takes the claim or returns what holds the key.
func (c *redisClaims) claim(ctx context.Context, id string) (claimState, error) {
	old, err := c.rdb.SetArgs(ctx, c.key(id), c.pending, redis.SetArgs{Mode: "NX", TTL: c.claimTTL, Get: true}).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return claimed, nil
	case err != nil:
		c.failed("claim", err)
		return 0, err
	case old == doneValue:
		return alreadyDone, nil
	default:
		return pendingElsewhere, nil
	}
}

// markDone records that the event's row is committed.
func (c *redisClaims) markDone(ctx context.Context, id string) {
	if err := c.rdb.Set(ctx, c.key(id), doneValue, c.doneTTL).Err(); err != nil {
		c.failed("mark done", err)
	}
}

// release drops our claim after a failed insert, so a retry is not taken
// for a duplicate.
func (c *redisClaims) release(ctx context.Context, id string) {
	if err := releaseScript.Run(ctx, c.rdb, []string{c.key(id)}, c.pending).Err(); err != nil {
		// The claim expires after claimTTL; until then other deliveries see
		// "pending" and go to Postgres, which decides correctly.
		c.failed("release", err)
	}
}

func newToken() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewRedisClient opens a client for the fast path from a redis:// or
// rediss:// URL. Every command is bounded by timeout and never retried: a
// slow Redis must fall back to Postgres, not hold the request.
func NewRedisClient(url string, timeout time.Duration) (*redis.Client, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	opt.DialTimeout = timeout
	opt.ReadTimeout = timeout
	opt.WriteTimeout = timeout
	opt.PoolTimeout = timeout
	opt.MaxRetries = -1
	opt.ContextTimeoutEnabled = true
	return redis.NewClient(opt), nil
}
