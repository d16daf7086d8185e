package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// MinTokenLength is the shortest ADMIN_TOKEN accepted: the token is the
// only key to the console.
const MinTokenLength = 16

// Health is the state of the two stores, as /readyz reports it.
type Health struct {
	Postgres      string
	PostgresError string
	Redis         string
	RedisError    string
}

// Config configures the console.
type Config struct {
	// Token signs users in; at least MinTokenLength bytes. Required.
	Token string
	// Pool reads and replays events. Required.
	Pool *pgxpool.Pool
	// Metrics is the process's registry, read for the intake counters.
	// Required.
	Metrics prometheus.Gatherer
	// Health reports the stores' state. Defaults to unknown.
	Health func(context.Context) Health
	// Destinations are this instance's destination names: the console
	// lists and replays to the destinations the running instances
	// recorded (admin.Record), and to these when none has.
	Destinations []string
	// SessionTTL is how long a sign-in lasts. Defaults to 12h.
	SessionTTL time.Duration
	// Log receives failed sign-ins and errors. Defaults to slog.Default().
	Log *slog.Logger
}

// WithDefaults returns c with its zero fields filled.
func (c Config) WithDefaults() Config {
	if c.Health == nil {
		c.Health = func(context.Context) Health { return Health{Postgres: "unknown", Redis: "unknown"} }
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = 12 * time.Hour
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return c
}

func (c Config) validate() error {
	switch {
	case len(c.Token) < MinTokenLength:
		return fmt.Errorf("console: ADMIN_TOKEN must be at least %d characters (it is %d)", MinTokenLength, len(c.Token))
	case c.Pool == nil:
		return errors.New("console: no Postgres pool")
	case c.Metrics == nil:
		return errors.New("console: no metrics registry")
	}
	return nil
}
