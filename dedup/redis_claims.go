package dedup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
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

// redisClaims is the Redis fast path. The commands of concurrent requests
// go out together, one pipeline per batch. After an error it stands aside
// for backoff, so a dead or slow Redis costs one timeout per backoff, not
// per request.
type redisClaims struct {
	rdb       redis.UniversalClient
	prefix    string
	epoch     atomic.Pointer[string] // after prefix; changes at a Postgres failover (Deduper.Forget)
	pending   string
	claimTTL  time.Duration
	doneTTL   time.Duration
	backoff   time.Duration
	downUntil atomic.Int64 // unix nanos
	errs      ratelog.Logger
	metrics   *metrics.Metrics
	loop      *batchLoop[*redisOp]
	ops       sync.Pool
}

// redisOp is one command for the pipeline: a claim (SET NX GET), a look
// (GET), or a "done" (SET) that nobody waits for.
type redisOp struct {
	kind opKind
	key  string
	old  string
	err  error
	done chan struct{}
}

type opKind int

const (
	opClaim opKind = iota + 1
	opLook
	opDone
)

// Pipelines: how many run at once, and the most commands in one.
const (
	redisPipelines = 2
	redisMaxBatch  = 256
	redisQueue     = 4096
)

func newRedisClaims(cfg Config) *redisClaims {
	c := &redisClaims{
		rdb:      cfg.Redis,
		prefix:   cfg.KeyPrefix,
		pending:  pendingPrefix + newToken(),
		claimTTL: cfg.ClaimTTL,
		doneTTL:  cfg.DoneTTL,
		backoff:  cfg.RedisBackoff,
		errs:     ratelog.Logger{Log: cfg.Logger},
		metrics:  cfg.Metrics,
	}
	c.epoch.Store(new(string))
	c.ops.New = func() any { return &redisOp{done: make(chan struct{}, 1)} }
	c.loop = newBatchLoop(redisPipelines, redisQueue, redisMaxBatch, c.exec)
	return c
}

// exec sends one batch as a pipeline and hands each command its result.
func (c *redisClaims) exec(ops []*redisOp) {
	ctx := context.Background() // the client's timeouts bound the round trip
	pipe := c.rdb.Pipeline()
	cmds := make([]interface{ Result() (string, error) }, len(ops))
	for i, op := range ops {
		switch op.kind {
		case opClaim:
			cmds[i] = pipe.SetArgs(ctx, op.key, c.pending, redis.SetArgs{Mode: "NX", TTL: c.claimTTL, Get: true})
		case opLook:
			cmds[i] = pipe.Get(ctx, op.key)
		default:
			cmds[i] = pipe.Set(ctx, op.key, doneValue, c.doneTTL)
		}
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	for i, op := range ops {
		op.old, op.err = cmds[i].Result()
		if op.kind != opDone {
			op.done <- struct{}{}
			continue
		}
		if op.err != nil {
			c.failed("mark done", op.err)
		}
		c.put(op)
	}
}

func (c *redisClaims) get(kind opKind, key string) *redisOp {
	op := c.ops.Get().(*redisOp)
	op.kind, op.key = kind, key
	return op
}

// do sends a claim or a look and waits for its answer.
func (c *redisClaims) do(kind opKind, id string) (string, error) {
	op := c.get(kind, c.key(id))
	if err := c.loop.send(op); err != nil {
		c.put(op)
		return "", err // full or stopping
	}
	<-op.done
	old, err := op.old, op.err
	c.put(op)
	return old, err
}

func (c *redisClaims) put(op *redisOp) {
	op.key, op.old, op.err = "", "", nil
	c.ops.Put(op)
}

// start starts the pipelines; before, claims fail (and the Deduper falls
// back to Postgres).
func (c *redisClaims) start() { c.loop.start() }

// close sends what is queued and stops the pipelines.
func (c *redisClaims) close() { c.loop.close() }

// key is the one place an event's Redis key is made.
func (c *redisClaims) key(id string) string { return c.prefix + *c.epoch.Load() + "evt:" + id }

// available reports whether Redis is worth asking now.
func (c *redisClaims) available() bool { return time.Now().UnixNano() >= c.downUntil.Load() }

func (c *redisClaims) failed(op string, err error) {
	c.downUntil.Store(time.Now().Add(c.backoff).UnixNano())
	c.metrics.RedisError(op)
	args := []any{"error", err}
	if redis.HasErrorPrefix(err, "READONLY") {
		args = append(args, "hint", readOnlyHint)
	}
	c.errs.Warn("redis "+op+" failed; deciding with Postgres alone", args...)
}

// readOnlyHint is logged with a READONLY error: REDIS_URL names a
// replica, such as a master that Sentinel failed over, which stays one.
// The fast path tries it again after each backoff and resumes once it is
// a master again; a redis+sentinel:// URL follows the master instead.
const readOnlyHint = "REDIS_URL names a replica (a master that failed over?): Postgres decides until it is a master again; a redis+sentinel:// REDIS_URL follows the master"

// claim runs SET key pending NX GET EX claimTTL: one command that either
// takes the claim or returns what holds the key.
func (c *redisClaims) claim(ctx context.Context, id string) (claimState, error) {
	old, err := c.do(opClaim, id)
	switch {
	case errors.Is(err, errLoopFull), errors.Is(err, errLoopClosed):
		return 0, fmt.Errorf("redis claim: %w", err) // Postgres decides
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

// A claim held elsewhere is looked at every lookEvery until awaitLimit has
// passed, after which Postgres decides. Looks ride the shared pipelines: a
// short pause adds little to the copy's answer.
const (
	lookEvery  = 2 * time.Millisecond
	awaitLimit = 64 * time.Millisecond
)

// awaitDone waits while another delivery holds id's claim, holding no
// Postgres connection, and reports whether its row was committed ("done").
// False when the claim is gone, still held after the waits, or Redis
// failed: then Postgres decides, as it always may.
func (c *redisClaims) awaitDone(ctx context.Context, id string) bool {
	t := time.NewTimer(lookEvery)
	defer t.Stop()
	for start := time.Now(); time.Since(start) < awaitLimit; t.Reset(lookEvery) {
		if c.loop.busy() {
			return false // looks would crowd out claims: Postgres decides
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		v, err := c.do(opLook, id)
		switch {
		case err == nil && v == doneValue:
			return true
		case errors.Is(err, redis.Nil), errors.Is(err, errLoopFull), errors.Is(err, errLoopClosed):
			return false // released, expired, or no room: Postgres decides
		case err != nil:
			c.failed("look", err)
			return false
		}
	}
	return false
}

// markDone records that the event's row is committed, without waiting:
// until it lands, a retry finds "pending" and asks Postgres, which knows.
func (c *redisClaims) markDone(ctx context.Context, id string) {
	op := c.get(opDone, c.key(id))
	if c.loop.send(op) != nil {
		c.put(op)
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
// rediss:// URL. A URL that names more nodes with addr= parameters
// (redis://n1:6379?addr=n2:6379&addr=n3:6379) is a Redis Cluster: every key
// operation here is single-key, so it works there too. A redis+sentinel://
// URL names Sentinels and a master (ParseSentinelURL). Every command is
// bounded by timeout and never retried on a network error: a slow Redis
// must fall back to Postgres, not hold the request.
func NewRedisClient(rawURL string, timeout time.Duration) (redis.UniversalClient, error) {
	if scheme, _, _ := strings.Cut(rawURL, "://"); strings.EqualFold(scheme, SentinelScheme) {
		return newSentinelClient(rawURL, timeout)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Query().Has("addr") {
		opt, err := redis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, err
		}
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.PoolTimeout = timeout, timeout, timeout, timeout
		opt.MaxRetries = -1 // MOVED and ASK redirects are still followed
		opt.ContextTimeoutEnabled = true
		return redis.NewClusterClient(opt), nil
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.PoolTimeout = timeout, timeout, timeout, timeout
	opt.MaxRetries = -1
	opt.ContextTimeoutEnabled = true
	return redis.NewClient(opt), nil
}
