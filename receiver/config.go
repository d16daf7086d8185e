package receiver

import (
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/store"
)

// Enqueuer takes accepted events for delivery to the destinations they
// match, without blocking; false means a delivery stays pending in Postgres
// for a later pass. lease is dedup.Result.Lease.
type Enqueuer interface {
	Enqueue(ev *event.Event, lease store.Lease) bool
}

// Config configures a Server.
type Config struct {
	// Verifier checks Stripe-Signature. Required.
	Verifier *Verifier
	// Deduper stores events and decides duplicates. Required.
	Deduper *dedup.Deduper
	// Queue receives accepted events. Required.
	Queue Enqueuer
	// Pool is pinged by /readyz. Required.
	Pool *pgxpool.Pool
	// Redis is pinged by /readyz; nil when Redis is not used.
	Redis redis.UniversalClient
	// MaxBodyBytes bounds a request body; larger ones get 413. Defaults to 1048576.
	MaxBodyBytes int
	// ReadTimeout bounds reading one request, headers and body. Defaults to 10s.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing one response. Defaults to 10s.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long. Defaults to 60s.
	IdleTimeout time.Duration
	// Concurrency bounds the webhook requests being verified and stored at
	// once, counted from when their body is read; past it they get 503.
	// Defaults to 512.
	Concurrency int
	// MaxConns bounds open connections. A new connection at the bound
	// closes the one idle longest (no byte of a request yet, or between
	// keep-alive requests); only when none is idle is it refused with 503.
	// At most 1048576. Defaults to 10000.
	MaxConns int
	// MaxBodyBytesInFlight bounds the bytes that webhook bodies being read
	// and handled hold, charged as they arrive; a request that does not fit
	// gets 503. At least twice MaxBodyBytes: a body's buffer grows by
	// doubling, and the old one is held while it is copied. Defaults to 64 MiB.
	MaxBodyBytesInFlight int
	// MaxConnsPerIP bounds one client address's connections, past it they
	// are refused with 429; 0 means no bound (the right setting behind a
	// load balancer).
	MaxConnsPerIP int
	// Allowlist, when set, is the only sources /webhooks/stripe accepts;
	// others get 403.
	Allowlist Prefixes
	// TrustedProxies are load balancers whose X-Forwarded-For names the
	// client for Allowlist.
	TrustedProxies Prefixes
	// TLSCertFile and TLSKeyFile, both set, serve HTTPS.
	TLSCertFile, TLSKeyFile string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics counts requests by outcome; nil records nothing.
	Metrics *metrics.Metrics
}

// WithDefaults returns a copy of c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.Concurrency == 0 {
		c.Concurrency = 512
	}
	if c.MaxConns == 0 {
		c.MaxConns = 10000
	}
	if c.MaxBodyBytesInFlight == 0 {
		c.MaxBodyBytesInFlight = 64 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Verifier == nil || c.Deduper == nil || c.Queue == nil || c.Pool == nil:
		return errors.New("receiver: Config.Verifier, Deduper, Queue and Pool are required")
	case c.MaxBodyBytes < 1 || c.Concurrency < 1 || c.MaxConns < 1 || c.MaxConnsPerIP < 0:
		return errors.New("receiver: MaxBodyBytes, Concurrency and MaxConns must be positive")
	case c.MaxConns > 1<<20:
		return errors.New("receiver: MaxConns must be at most 1048576")
	case c.MaxBodyBytesInFlight < 2*c.MaxBodyBytes:
		return errors.New("receiver: MaxBodyBytesInFlight must be at least twice MaxBodyBytes")
	case (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
		return errors.New("receiver: TLS needs both a certificate and a key file")
	}
	return nil
}
