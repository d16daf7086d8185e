package receiver

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oncehook/oncehook/internal/redact"
	"github.com/oncehook/oncehook/migrations"
)

// Readiness states. /readyz on the public listener shows only these; why a
// dependency is not ok is logged and served by ReadinessDetail.
const (
	ReadyStatus        = "ready"
	NotReadyStatus     = "not ready"
	ShuttingDownStatus = "shutting down"

	StateOK          = "ok"
	StateDown        = "down"         // Postgres or Redis did not answer, or failed
	StateNotMigrated = "not_migrated" // Postgres: the schema is older than this binary
	StateDisabled    = "disabled"     // Redis: not configured
)

// readiness is the public /readyz body: states only, never a driver's
// error, which names hosts, ports, the database user and the database.
type readiness struct {
	Status   string `json:"status"`   // ready, not ready, shutting down
	Postgres string `json:"postgres"` // ok, down, not_migrated
	Redis    string `json:"redis"`    // ok, down, disabled
}

// ReadinessDetail is the readiness check with the reasons, for operators
// (the admin listener): the public /readyz shows the states alone.
type ReadinessDetail struct {
	Status        string `json:"status"`   // ReadyStatus, NotReadyStatus or ShuttingDownStatus
	Postgres      string `json:"postgres"` // StateOK, StateDown or StateNotMigrated
	PostgresError string `json:"postgres_error,omitempty"`
	Redis         string `json:"redis"` // StateOK, StateDown or StateDisabled
	RedisError    string `json:"redis_error,omitempty"`
}

// readyMaxAge is how old the state /readyz answers from may be: Postgres
// and Redis are checked at most once a second, whatever the rate of
// /readyz on either listener and of the console's overview, so that a
// flood of them costs the intake no Postgres connection or round trip.
const readyMaxAge = time.Second

// readyState is the last check of Postgres and Redis, shared by every
// caller: a caller that finds it older than readyMaxAge checks again, and
// callers that come while that check runs wait for it rather than start
// their own, so that no more than one check is ever under way.
type readyState struct {
	mu       sync.Mutex
	detail   ReadinessDetail // without Status, which the caller sets
	at       time.Time       // when the last check began; zero: none has ended
	inflight chan struct{}   // closed when the check under way ends; nil: none is
	checks   atomic.Int64    // checks run, for tests
}

// get returns a state at most readyMaxAge old, running check for it if
// none is under way, or waiting for the one that is, until ctx ends.
func (r *readyState) get(ctx context.Context, check func() ReadinessDetail) ReadinessDetail {
	r.mu.Lock()
	if !r.at.IsZero() && time.Since(r.at) < readyMaxAge {
		defer r.mu.Unlock()
		return r.detail
	}
	if r.inflight == nil {
		done := make(chan struct{})
		r.inflight = done
		r.mu.Unlock()
		var d ReadinessDetail
		began := time.Now()
		defer func() { // also if check panicked: the waiters go on
			r.mu.Lock()
			r.detail, r.at, r.inflight = d, began, nil
			r.mu.Unlock()
			close(done)
		}()
		r.checks.Add(1)
		d = check()
		return d
	}
	wait := r.inflight
	r.mu.Unlock()
	select {
	case <-wait:
	case <-ctx.Done():
	}
	return r.last()
}

// last returns the last state checked, without checking.
func (r *readyState) last() ReadinessDetail {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.at.IsZero() {
		return ReadinessDetail{Postgres: StateDown, PostgresError: "no readiness check has finished yet", Redis: StateDown}
	}
	return r.detail
}

// ReadinessDetail is the state of Postgres (reachable and migrated) and
// Redis, as /readyz answers it, with why a dependency is not ok; the state
// is at most readyMaxAge old (see readyState), and Status says "shutting
// down" as soon as Shutdown has begun. The error texts are the drivers'
// (which leave passwords out), with the connection's password and URL
// query values redacted as well. Only Postgres decides readiness: without
// Redis the receiver falls back to it.
func (s *Server) ReadinessDetail(ctx context.Context) ReadinessDetail {
	if s.stopping.Load() { // at once, without waiting for a check
		d := s.ready.last()
		d.Status = ShuttingDownStatus
		return d
	}
	d := s.ready.get(ctx, s.checkDependencies)
	switch {
	case s.stopping.Load():
		d.Status = ShuttingDownStatus
	case d.Postgres != StateOK:
		d.Status = NotReadyStatus
	default:
		d.Status = ReadyStatus
	}
	return d
}

// checkDependencies checks Postgres and Redis, each within readyTimeout,
// and logs why one is not ok, rate-limited.
func (s *Server) checkDependencies() ReadinessDetail {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	d := ReadinessDetail{Postgres: StateOK, Redis: StateDisabled}
	if v, err := s.schemaVersion(ctx); err != nil {
		d.Postgres, d.PostgresError = StateDown, s.redactPostgres(err).Error()
	} else if latest := migrations.Latest(); v < latest {
		d.Postgres = StateNotMigrated
		d.PostgresError = fmt.Sprintf("schema version %d, this binary needs %d: run `oncehook migrate`", v, latest)
	}
	if s.cfg.Redis != nil {
		d.Redis = StateOK
		rctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
		defer cancel()
		// The client bounds a read by its own ReadTimeout, not by rctx:
		// the check waits for rctx alone, and the ping ends later.
		pinged := make(chan error, 1)
		go func() { pinged <- s.cfg.Redis.Ping(rctx).Err() }()
		var err error
		select {
		case err = <-pinged:
		case <-rctx.Done():
			err = fmt.Errorf("no answer within %v", readyTimeout)
		}
		if err != nil {
			// A ping that ran out of time says only that: name the
			// address it was for.
			if c, ok := s.cfg.Redis.(interface{ Options() *redis.Options }); ok && c.Options().Addr != "" && !strings.Contains(err.Error(), c.Options().Addr) {
				err = fmt.Errorf("redis at %s: %w", c.Options().Addr, err)
			}
			d.Redis, d.RedisError = StateDown, redactRedis(s.cfg.Redis, err).Error()
		}
	}
	if d.PostgresError != "" {
		s.readyPostgres.Warn("readyz: postgres "+d.Postgres, "error", d.PostgresError)
	}
	if d.RedisError != "" {
		s.readyRedis.Warn("readyz: redis "+d.Redis, "error", d.RedisError)
	}
	return d
}

// schemaVersion reads the schema version. A pooled connection that broke
// while idle (Postgres restarted, a proxy or a failover dropped it) fails
// its query and is discarded by the pool when released: the check then
// tries the next one, up to every connection the pool may hold, so the
// first check once Postgres is back answers ok, however many dead
// connections the pool still held. Only a failure that closed the
// connection is tried again; the query only reads.
func (s *Server) schemaVersion(ctx context.Context) (int, error) {
	tries := int(s.cfg.Pool.Config().MaxConns) + 1
	for try := 1; ; try++ {
		conn, err := s.cfg.Pool.Acquire(ctx)
		if err != nil {
			return 0, err
		}
		v, err := migrations.Current(ctx, conn)
		broken := err != nil && conn.Conn().IsClosed()
		conn.Release()
		if !broken || try >= tries || ctx.Err() != nil {
			return v, err
		}
	}
}

// readiness is the public /readyz answer: the states alone.
func (s *Server) readiness(ctx context.Context) readiness {
	d := s.ReadinessDetail(ctx)
	return readiness{Status: d.Status, Postgres: d.Postgres, Redis: d.Redis}
}

// redactPostgres removes the pool's password and URL query values from err.
func (s *Server) redactPostgres(err error) error {
	cfg := s.cfg.Pool.Config()
	return redact.Error(err, cfg.ConnString(), credentials(cfg.ConnConfig.User, cfg.ConnConfig.Password))
}

// redactRedis removes the client's passwords from err.
func redactRedis(c redis.UniversalClient, err error) error {
	switch c := c.(type) {
	case interface {
		Options() *redis.Options
		SentinelCredentials() (user, password string)
	}: // dedup.SentinelClient: the master's credentials and the Sentinels'
		user, password := c.SentinelCredentials()
		return redact.Error(err, credentials(c.Options().Username, c.Options().Password), credentials(user, password))
	case interface{ Options() *redis.Options }:
		return redact.Error(err, credentials(c.Options().Username, c.Options().Password))
	case interface{ Options() *redis.ClusterOptions }:
		return redact.Error(err, credentials(c.Options().Username, c.Options().Password))
	}
	return err
}

// credentials is a URL that carries user and password alone, for
// redact.Error to find the password in its every spelling; "" without a
// password.
func credentials(user, password string) string {
	if password == "" {
		return ""
	}
	return (&url.URL{Scheme: "x", User: url.UserPassword(user, password), Host: "x"}).String()
}
