package dedup

import (
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/route"
)

// Config configures a Deduper.
type Config struct {
	// Pool is the Postgres pool holding the ledger and the deliveries. Required.
	Pool *pgxpool.Pool
	// Redis is the fast path. Nil means Postgres alone.
	Redis redis.UniversalClient
	// KeyPrefix starts every Redis key. Deployments that share a prefix must
	// share the Postgres database too, or one takes the other's events for
	// duplicates. Defaults to KeyPrefixFor(Namespace(Pool)), which is unique
	// to the database.
	KeyPrefix string
	// DoneTTL is the lifetime of a "done" key; it must cover Stripe's 3 days
	// of retries. Defaults to 72h.
	DoneTTL time.Duration
	// ClaimTTL is the lifetime of an "in flight" claim, so that a crashed
	// instance's claim expires. Defaults to 30s.
	ClaimTTL time.Duration
	// RedisBackoff is how long Redis is bypassed after an error before it is
	// tried again. Defaults to 1s.
	RedisBackoff time.Duration
	// RecentIDs is how many of the event ids this process stored it keeps
	// in memory (about 100 bytes each), so that their copies are answered
	// without Redis or Postgres; each for DoneTTL at most. 0 keeps none.
	RecentIDs int
	// MaxBatch bounds the rows of one group-committed INSERT. Defaults to 256.
	MaxBatch int
	// Flushers is how many batches may be in flight at once. One is the
	// classic group commit: while it commits, the next batch gathers, so the
	// batch grows with the load; measured on the bench, more flushers make
	// smaller batches and cost Postgres more CPU per event. Defaults to 1.
	Flushers int
	// QueueSize bounds the inserts waiting for a batch; past it StoreOnce answers
	// ErrOverloaded. Defaults to 4096.
	QueueSize int
	// CommitTimeout bounds one batch's round trip to Postgres. Defaults to 5s.
	CommitTimeout time.Duration
	// Lease is the length of the lease a fresh delivery row is born with
	// (its locked_until and next_attempt_at), so that no sweeper takes it
	// while this instance delivers it. Result.Lease carries it to delivery, which
	// reads it from there. Defaults to 1m.
	Lease time.Duration
	// Routes decides the destinations of a new event: one delivery row per
	// match is stored with it. Defaults to route.All(), one destination
	// "default" for every event.
	Routes *route.Table
	// Logger receives rate-limited fault reports. Defaults to slog.Default().
	Logger *slog.Logger
	// Metrics records decisions, batches and errors; nil records nothing.
	Metrics *metrics.Metrics
}

// WithDefaults returns a copy of c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.DoneTTL == 0 {
		c.DoneTTL = 72 * time.Hour
	}
	if c.ClaimTTL == 0 {
		c.ClaimTTL = 30 * time.Second
	}
	if c.RedisBackoff == 0 {
		c.RedisBackoff = time.Second
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 256
	}
	if c.Flushers == 0 {
		c.Flushers = 1
	}
	if c.QueueSize == 0 {
		c.QueueSize = 4096
	}
	if c.CommitTimeout == 0 {
		c.CommitTimeout = 5 * time.Second
	}
	if c.Lease == 0 {
		c.Lease = time.Minute
	}
	if c.Routes == nil {
		c.Routes = route.All()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Pool == nil:
		return errors.New("dedup: Config.Pool is required")
	case c.DoneTTL < time.Second || c.ClaimTTL < time.Second:
		return errors.New("dedup: DoneTTL and ClaimTTL must be at least 1s (Redis EX has second resolution)")
	case c.MaxBatch < 1 || c.Flushers < 1 || c.QueueSize < 1:
		return errors.New("dedup: MaxBatch, Flushers and QueueSize must be positive")
	case c.RecentIDs < 0:
		return errors.New("dedup: RecentIDs must not be negative")
	case c.CommitTimeout <= 0 || c.Lease <= 0 || c.RedisBackoff < 0:
		return errors.New("dedup: CommitTimeout and Lease must be positive")
	}
	return nil
}
