package service

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/internal/pgerr"
	"github.com/oncehook/oncehook/internal/redact"
	"github.com/oncehook/oncehook/migrations"
)

// startupTimeout bounds waiting for Postgres and migrating at start.
const startupTimeout = 60 * time.Second

// defaultPoolSize is the Postgres pool size when DATABASE_URL sets no
// pool_max_conns.
const defaultPoolSize = 8

// openPool connects to Postgres, waiting up to startupTimeout for it to
// come up (instances often start before their database). A refusal that
// waiting does not change (pgerr.IsPermanentConnect: no such database,
// failed authentication) ends the wait at once.
// afterConnect, if set, runs on every new connection before the pool
// hands it out.
func openPool(ctx context.Context, c Config, log *slog.Logger, afterConnect func(context.Context, *pgx.Conn) error) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(c.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", redact.Error(err, c.DatabaseURL))
	}
	if !strings.Contains(c.DatabaseURL, "pool_max_conns") {
		// One connection runs the insert batch; the others serve delivery
		// results, the sweeper, the pruner and /readyz.
		pcfg.MaxConns = defaultPoolSize
	}
	pcfg.AfterConnect = afterConnect
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", redact.Error(err, c.DatabaseURL))
	}
	shown := shownDatabase(c.DatabaseURL, pcfg)
	deadline := time.Now().Add(startupTimeout)
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = redactPostgres(pool.Ping(pctx), c.DatabaseURL, pcfg)
		cancel()
		if err == nil {
			return pool, nil
		}
		if reason, ok := pgerr.IsPermanentConnect(err); ok {
			pool.Close()
			return nil, fmt.Errorf("DATABASE_URL %s: %s; not retried: %w", shown, reason, err)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			pool.Close()
			return nil, fmt.Errorf("connecting to Postgres (DATABASE_URL %s): %w", shown, err)
		}
		log.Warn("waiting for Postgres", "database_url", shown, "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// shownDatabase is DATABASE_URL as logs and errors show it: the URL with
// its password and query values masked and its user name kept (see
// internal/redact); a keyword/value string ("host=db user=app ...") is
// shown as its user, host, port and database.
func shownDatabase(raw string, pcfg *pgxpool.Config) string {
	if strings.Contains(raw, "://") {
		return redact.URL(raw)
	}
	cc := pcfg.ConnConfig
	return fmt.Sprintf("user=%s host=%s port=%d database=%s", cc.User, cc.Host, cc.Port, cc.Database)
}

// redactPostgres removes DATABASE_URL's secrets from err, and the password
// the pool has from elsewhere (PGPASSWORD, a passfile), as
// receiver.ReadinessDetail does.
func redactPostgres(err error, raw string, pcfg *pgxpool.Config) error {
	cc := pcfg.ConnConfig
	var creds string
	if cc.Password != "" {
		creds = (&url.URL{Scheme: "x", User: url.UserPassword(cc.User, cc.Password), Host: "x"}).String()
	}
	return redact.Error(err, raw, creds)
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
