package service

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/internal/redact"
	"github.com/oncehook/oncehook/migrations"
)

// startupTimeout bounds waiting for Postgres and migrating at start.
const startupTimeout = 60 * time.Second

// defaultPoolSize is the Postgres pool size when DATABASE_URL sets no
// pool_max_conns.
const defaultPoolSize = 8

// openPool connects to Postgres, waiting up to startupTimeout for it to
// come up (instances often start before their database).
func openPool(ctx context.Context, c Config, log *slog.Logger) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(c.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", redact.Error(err, c.DatabaseURL))
	}
	if !strings.Contains(c.DatabaseURL, "pool_max_conns") {
		// One connection runs the insert batch; the others serve delivery
		// results, the sweeper, the pruner and /readyz.
		pcfg.MaxConns = defaultPoolSize
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", redact.Error(err, c.DatabaseURL))
	}
	deadline := time.Now().Add(startupTimeout)
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = redact.Error(pool.Ping(pctx), c.DatabaseURL)
		cancel()
		if err == nil {
			return pool, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			pool.Close()
			return nil, fmt.Errorf("connecting to Postgres (DATABASE_URL): %w", err)
		}
		log.Warn("waiting for Postgres", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// ApplyMigrations applies the embedded migrations, within startupTimeout.
func ApplyMigrations(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	mctx, cancel := context.WithTimeout(ctx, startupTimeout)
	defer cancel()
	applied, err := migrations.Apply(mctx, pool)
	if err != nil {
		return err
	}
	log.Info("schema migrated", "applied", applied, "version", migrations.Latest())
	return nil
}
