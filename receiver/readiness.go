package receiver

import (
	"context"
	"fmt"
	"net/url"

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

// ReadinessDetail checks Postgres (reachable and migrated) and Redis, as
// /readyz does, and says why a dependency is not ok. The error texts are
// the drivers' (which leave passwords out), with the connection's password
// and URL query values redacted as well. Only Postgres decides readiness:
// without Redis the receiver falls back to it.
func (s *Server) ReadinessDetail(ctx context.Context) ReadinessDetail {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readyTimeout)
	defer cancel()
	d := ReadinessDetail{Postgres: StateOK, Redis: StateDisabled}
	if v, err := migrations.Current(ctx, s.cfg.Pool); err != nil {
		d.Postgres, d.PostgresError = StateDown, s.redactPostgres(err).Error()
	} else if latest := migrations.Latest(); v < latest {
		d.Postgres = StateNotMigrated
		d.PostgresError = fmt.Sprintf("schema version %d, this binary needs %d: run `oncehook migrate`", v, latest)
	}
	if s.cfg.Redis != nil {
		d.Redis = StateOK
		if err := s.cfg.Redis.Ping(ctx).Err(); err != nil {
			d.Redis, d.RedisError = StateDown, redactRedis(s.cfg.Redis, err).Error()
		}
	}
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

// readiness is the public /readyz answer; the reasons go to the log,
// rate-limited, since load balancers ask every few seconds.
func (s *Server) readiness(ctx context.Context) readiness {
	d := s.ReadinessDetail(ctx)
	if d.PostgresError != "" || d.RedisError != "" {
		if d.PostgresError != "" {
			s.readyPostgres.Warn("readyz: postgres "+d.Postgres, "error", d.PostgresError)
		}
		if d.RedisError != "" {
			s.readyRedis.Warn("readyz: redis "+d.Redis, "error", d.RedisError)
		}
	}
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
