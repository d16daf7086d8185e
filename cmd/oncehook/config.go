package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/console"
	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/internal/redact"
	"github.com/oncehook/oncehook/internal/service"
	"github.com/oncehook/oncehook/receiver"
	"github.com/oncehook/oncehook/sink"
)

// config is everything the receiver reads from the environment; the
// wiring (internal/service) builds the service from it. Only this package
// reads the environment; library packages take their own Config.
type config = service.Config

// stripeConfig is the Stripe API's settings: the reconciler and thin events.
type stripeConfig = service.StripeConfig

// loadConfig reads the environment. The error names every bad variable and
// what it accepts; it never contains a secret.
func loadConfig(lookup func(string) (string, bool)) (config, error) {
	e := env{lookup: lookup}
	c := config{
		ListenAddr:          e.str("LISTEN_ADDR", ":8080"),
		AdminAddr:           e.optional("ADMIN_ADDR", "127.0.0.1:9090"),
		AdminToken:          e.get("ADMIN_TOKEN"),
		Secrets:             e.secrets("STRIPE_WEBHOOK_SECRET"),
		Tolerance:           e.duration("SIGNATURE_TOLERANCE", 5*time.Minute, time.Second),
		DatabaseURL:         e.databaseURL("DATABASE_URL"),
		RedisURL:            e.redisURL("REDIS_URL"),
		RedisTimeout:        e.duration("REDIS_TIMEOUT", 50*time.Millisecond, time.Millisecond),
		RedisKeyPrefix:      e.get("REDIS_KEY_PREFIX"),
		DedupTTL:            e.duration("DEDUP_TTL", 72*time.Hour, time.Second),
		DedupRecentIDs:      e.integerUpTo("DEDUP_RECENT_IDS", 100_000, 0, 10_000_000),
		MaxBodyBytes:        e.integer("MAX_BODY_BYTES", 1<<20, 1024),
		Workers:             e.integer("WORKERS", 32, 1),
		QueueSize:           e.integer("QUEUE_SIZE", 10000, 1),
		QueueMaxBytes:       e.integer("QUEUE_MAX_BYTES", delivery.DefaultQueueMaxBytes, 1024),
		DeliveryMaxAttempts: e.integerUpTo("DELIVERY_MAX_ATTEMPTS", 15, 1, delivery.MaxAttemptsLimit),
		DeliveryTimeout:     e.duration("DELIVERY_TIMEOUT", 10*time.Second, time.Millisecond),
		Retention:           e.duration("RETENTION", 720*time.Hour, 72*time.Hour),
		PruneDuty:           e.integerUpTo("PRUNE_DUTY", 75, 1, 100),
		ShutdownTimeout:     e.duration("SHUTDOWN_TIMEOUT", 30*time.Second, 0),
		MaxConcurrency:      e.integer("MAX_CONCURRENCY", 512, 1),
		MaxConnections:      e.integerUpTo("MAX_CONNECTIONS", 10000, 1, 1<<20),
		MaxInflightBytes:    e.integer("MAX_INFLIGHT_BODY_BYTES", 64<<20, 1024),
		MaxConnsPerIP:       e.integer("MAX_CONNS_PER_IP", 0, 0),
		ReadTimeout:         e.duration("READ_TIMEOUT", 10*time.Second, 100*time.Millisecond),
		IdleTimeout:         e.duration("IDLE_TIMEOUT", 60*time.Second, time.Second),
		Allowlist:           e.prefixes("STRIPE_IP_ALLOWLIST"),
		TrustedProxies:      e.prefixes("TRUSTED_PROXIES"),
		TLSCertFile:         e.file("TLS_CERT_FILE"),
		TLSKeyFile:          e.file("TLS_KEY_FILE"),
		LogLevel:            e.level("LOG_LEVEL"),
		LogFormat:           e.oneOf("LOG_FORMAT", "json", "json", "text"),
	}
	c.Destinations = e.destinations(&c)
	c.Stripe = e.stripe()
	c.Stripe.ReconcileTypes = e.eventTypes()
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		e.fail("TLS_CERT_FILE", "TLS_CERT_FILE and TLS_KEY_FILE go together: set both or neither")
	}
	if c.TrustedProxies != nil && c.Allowlist == nil {
		e.fail("TRUSTED_PROXIES", "only used with STRIPE_IP_ALLOWLIST")
	}
	if c.MaxInflightBytes < 2*c.MaxBodyBytes {
		e.fail("MAX_INFLIGHT_BODY_BYTES", "%d is less than twice MAX_BODY_BYTES (%d): the largest body must fit while its buffer grows", c.MaxInflightBytes, c.MaxBodyBytes)
	}
	if n := max(1, len(c.Destinations)); c.QueueMaxBytes/n < c.MaxBodyBytes {
		e.fail("QUEUE_MAX_BYTES", "%d shared by %d destination(s) leaves less than MAX_BODY_BYTES (%d) each: one event must fit", c.QueueMaxBytes, n, c.MaxBodyBytes)
	}
	if c.AdminToken != "" && len(c.AdminToken) < console.MinTokenLength {
		e.fail("ADMIN_TOKEN", "is %d characters; the console's only key must be at least %d", len(c.AdminToken), console.MinTokenLength)
	}
	if c.AdminToken != "" && c.AdminAddr == "" {
		e.fail("ADMIN_TOKEN", "the console is served on ADMIN_ADDR, which is empty (off)")
	}
	if c.RedisKeyPrefix != "" && c.RedisURL == "" {
		e.fail("REDIS_KEY_PREFIX", "only used with REDIS_URL")
	}
	if c.Stripe.APIKey != "" && c.Stripe.ReconcileLookback+c.Stripe.ReconcileOverlap > c.Retention-time.Hour {
		e.fail("RECONCILE_LOOKBACK", "%s plus RECONCILE_OVERLAP (%s) reaches past what the ledger keeps (RETENTION %s, less 1h): pruned events would be delivered again",
			c.Stripe.ReconcileLookback, c.Stripe.ReconcileOverlap, c.Retention)
	}
	if c.Retention < c.DedupTTL {
		e.fail("RETENTION", "%s is shorter than DEDUP_TTL (%s): a retry after the row is pruned would be accepted again", c.Retention, c.DedupTTL)
	}
	longest := c.DeliveryTimeout
	for _, d := range c.Destinations {
		longest = max(longest, d.Timeout)
	}
	c.DeliveryLease = e.duration("DELIVERY_LEASE", delivery.DefaultLease(longest), longest+10*time.Second)
	return c, errors.Join(e.errs...)
}

// env reads variables and gathers one error per bad one.
type env struct {
	lookup func(string) (string, bool)
	errs   []error
}

func (e *env) get(name string) string {
	v, _ := e.lookup(name)
	return v
}

// optional is def when name is unset; set to empty, it turns a feature off.
func (e *env) optional(name, def string) string {
	if v, ok := e.lookup(name); ok {
		return v
	}
	return def
}

func (e *env) fail(name, format string, args ...any) {
	e.errs = append(e.errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
}

func (e *env) str(name, def string) string {
	if v := e.get(name); v != "" {
		return v
	}
	return def
}

func (e *env) duration(name string, def, least time.Duration) time.Duration {
	v := e.get(name)
	if v == "" {
		return def
	}
	d, err := parseDuration(v)
	if err != nil || d < least || (least == 0 && d < 0) {
		e.fail(name, "%q is not a duration of at least %s (like %s; 7d for days)", v, least, def)
		return def
	}
	return d
}

func (e *env) integer(name string, def, least int) int {
	v := e.get(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < least {
		e.fail(name, "%q is not a whole number of at least %d", v, least)
		return def
	}
	return n
}

func (e *env) integerUpTo(name string, def, least, most int) int {
	n := e.integer(name, def, least)
	if n > most {
		e.fail(name, "%d is more than %d", n, most)
		return def
	}
	return n
}

func (e *env) oneOf(name, def string, allowed ...string) string {
	v := strings.ToLower(e.str(name, def))
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	e.fail(name, "%q is not one of %s", v, strings.Join(allowed, ", "))
	return def
}

func (e *env) level(name string) slog.Level {
	var l slog.Level
	v := e.str(name, "info")
	if err := l.UnmarshalText([]byte(v)); err != nil {
		e.fail(name, "%q is not one of debug, info, warn, error", v)
		return slog.LevelInfo
	}
	return l
}

// secrets reads comma-separated whsec_ secrets without ever echoing one.
func (e *env) secrets(name string) []string {
	v := e.get(name)
	if v == "" {
		e.fail(name, "required: the endpoint's signing secret(s), comma-separated whsec_ values")
		return nil
	}
	var out []string
	for i, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if !strings.HasPrefix(s, "whsec_") || len(s) <= len("whsec_") {
			e.fail(name, "secret #%d does not look like a Stripe signing secret (whsec_...)", i+1)
			continue
		}
		out = append(out, s)
	}
	return out
}

func (e *env) databaseURL(name string) string {
	v := e.get(name)
	if v == "" {
		e.fail(name, "required: a Postgres URL like postgres://user:pass@host:5432/db")
		return ""
	}
	if _, err := pgxpool.ParseConfig(v); err != nil {
		e.fail(name, "not a valid Postgres URL (%v)", redact.Error(err, v))
	}
	return v
}

func (e *env) sink(name string) sink.Target {
	t, err := sink.ParseURL(e.str(name, "stdout"))
	if err != nil {
		e.fail(name, "%v", err)
	}
	return t
}

// signer reads an HTTP sink's Standard Webhooks secret without echoing
// it; urlVar names the variable that set t.
func (e *env) signer(name string, t sink.Target, urlVar string) *sink.StandardWebhooksSigner {
	v := e.get(name)
	if v == "" {
		return nil
	}
	if t.Scheme != "http" && t.Scheme != "https" {
		e.fail(name, "only an http:// or https:// %s is signed; unset it or change %s", urlVar, urlVar)
		return nil
	}
	s, err := sink.NewStandardWebhooksSigner(v)
	if err != nil {
		e.fail(name, "%v", err)
	}
	return s
}

// prefixes reads an IP/CIDR list; unset or empty means none (nil).
func (e *env) prefixes(name string) receiver.Prefixes {
	v := e.get(name)
	if v == "" {
		return nil
	}
	p, err := receiver.ParsePrefixes(v)
	if err != nil {
		e.fail(name, "%v (want IPs and CIDRs, comma-separated, \"stripe\", or @/path/to/list)", err)
		return nil
	}
	if len(p) == 0 {
		e.fail(name, "the list is empty")
	}
	return p
}

// file reads a path that must name a readable file.
func (e *env) file(name string) string {
	v := e.get(name)
	if v == "" {
		return ""
	}
	if f, err := os.Open(v); err != nil {
		e.fail(name, "cannot read %s: %v", v, err)
	} else {
		f.Close()
	}
	return v
}

func (e *env) redisURL(name string) string {
	v := e.get(name)
	if v == "" {
		return ""
	}
	if !strings.HasPrefix(v, "redis://") && !strings.HasPrefix(v, "rediss://") && !strings.HasPrefix(v, dedup.SentinelScheme+"://") {
		e.fail(name, "must start with redis://, rediss:// or redis+sentinel://, or be empty for Postgres alone")
		return v
	}
	client, err := dedup.NewRedisClient(v, time.Second) // parses only; connects on first use
	if err != nil {
		e.fail(name, "not a valid Redis URL (%v)", redact.Error(err, v))
		return v
	}
	_ = client.Close()
	return v
}

func newLogger(c config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}
