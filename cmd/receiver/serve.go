package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/redact"
	"github.com/oncehook/oncehook/migrations"
	"github.com/oncehook/oncehook/receiver"
)

// startupTimeout bounds waiting for Postgres and migrating at start.
const startupTimeout = 60 * time.Second

// defaultPoolSize is the Postgres pool size when DATABASE_URL sets no
// pool_max_conns.
const defaultPoolSize = 8

// migrate applies the migrations; it needs only DATABASE_URL.
func migrate(ctx context.Context) error {
	pool, err := adminPool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	return applyMigrations(ctx, pool, slog.Default())
}

// serve runs the receiver until ctx ends, then shuts down in this order:
// listener and in-flight requests, the reconciler, the batch writer, the sweeper and the
// delivery workers, the pruner, the destination record (this instance's set is
// removed), then the Postgres and Redis pools. All of
// it ends within SHUTDOWN_TIMEOUT.
func serve(ctx context.Context) error {
	c, err := loadConfig(os.LookupEnv)
	if err != nil {
		return err
	}
	if err := strayDestinationVars(os.Environ(), c.Destinations); err != nil {
		return err
	}
	log := newLogger(c)
	limitMemory(c, log)
	checkFileLimit(c, log)
	pool, err := openPool(ctx, c, log)
	if err != nil {
		return err
	}
	var closePool firstOnly // at the end of the shutdown, or on an early return
	defer closePool.Do(pool.Close)
	if err := applyMigrations(ctx, pool, log); err != nil {
		return err
	}

	var rdb redis.UniversalClient // nil: Postgres alone
	if c.RedisURL != "" {
		client, err := dedup.NewRedisClient(c.RedisURL, c.RedisTimeout)
		if err != nil {
			return fmt.Errorf("REDIS_URL: %w", redact.Error(err, c.RedisURL))
		}
		defer client.Close() // after closePool's wait, if any; Close is idempotent
		rdb = client
	}

	m := metrics.New()
	stripeAPI, err := stripeClient(c.Stripe)
	if err != nil {
		return err
	}
	dests, err := openDestinations(c)
	if err != nil {
		return err
	}
	if c.Stripe.ThinEvents == "fetch" {
		withThinFetch(dests, stripeAPI)
	}
	lease := c.DeliveryLease
	disp, err := delivery.NewDispatcher(delivery.DispatcherConfig{
		Pool: pool, Destinations: dests, QueueSize: c.QueueSize, QueueMaxBytes: int64(c.QueueMaxBytes),
		Lease: lease, Logger: log, Metrics: m,
	})
	if err != nil {
		closeSinks(dests)
		return err
	}
	defer func() { // on an early return; after the shutdown below it returns at once
		ctx, cancel := context.WithTimeout(context.Background(), c.ShutdownTimeout)
		defer cancel()
		_ = disp.Stop(ctx)
	}()
	warnOrphaned(ctx, pool, c.Destinations, log)
	reg, err := startRegistration(ctx, pool, c.Destinations, log)
	if err != nil {
		return err
	}
	defer func() { // on an early return; after the shutdown below it returns at once
		ctx, cancel := context.WithTimeout(context.Background(), c.ShutdownTimeout)
		defer cancel()
		_ = reg.Stop(ctx)
	}()
	pruner, err := delivery.NewPruner(delivery.PrunerConfig{Pool: pool, Retention: c.Retention, Duty: float64(c.PruneDuty) / 100,
		Logger: log, Metrics: m})
	if err != nil {
		return err
	}
	pruner.Start()
	var stopPruner firstOnly
	defer stopPruner.Do(pruner.Stop)
	dd, err := dedup.New(dedup.Config{Pool: pool, Redis: rdb, KeyPrefix: c.RedisKeyPrefix, DoneTTL: c.DedupTTL, Lease: lease,
		RecentIDs: c.DedupRecentIDs, Routes: disp.Routes(), Logger: log, Metrics: m})
	if err != nil {
		return err
	}
	defer dd.Stop()
	reconciler, err := newReconciler(c.Stripe, c.Retention, stripeAPI, pool, dd, disp, log, m)
	if err != nil {
		return err
	}
	verifier, err := receiver.NewVerifier(c.Secrets, c.Tolerance)
	if err != nil {
		return err
	}
	srv, err := receiver.New(receiver.Config{
		Verifier: verifier, Deduper: dd, Queue: disp, Pool: pool, Redis: rdb,
		MaxBodyBytes: c.MaxBodyBytes, Logger: log, Metrics: m,
		Concurrency: c.MaxConcurrency, MaxConns: c.MaxConnections, MaxBodyBytesInFlight: c.MaxInflightBytes,
		MaxConnsPerIP: c.MaxConnsPerIP, ReadTimeout: c.ReadTimeout, IdleTimeout: c.IdleTimeout,
		Allowlist: c.Allowlist, TrustedProxies: c.TrustedProxies, TLSCertFile: c.TLSCertFile, TLSKeyFile: c.TLSKeyFile,
	})
	registerDestinationGauges(m, disp, pool, c.Destinations)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", c.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR: %w", err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	cons, err := newConsole(c, pool, m, srv, log)
	if err != nil {
		return err
	}
	admin := startAdmin(c.AdminAddr, m, srv, cons, log)
	if reconciler != nil {
		reconciler.Start()
		defer reconciler.Stop() // on an early return; idempotent
	}
	log.Info("receiver listening", "addr", ln.Addr().String(), "admin_addr", c.AdminAddr, "destinations", destinationsLog(c.Destinations),
		"redis", c.RedisURL != "", "secrets", len(c.Secrets), "tls", c.TLSCertFile != "", "allowlist", len(c.Allowlist))

	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", c.ShutdownTimeout.String())
	case err := <-serveErr:
		log.Error("listener failed; shutting down", "error", err)
	}
	// Every step ends by one deadline, SHUTDOWN_TIMEOUT from now: a step
	// still running then is left behind, as the process is about to exit.
	sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownTimeout)
	defer cancel()
	within(sctx, log, "listener and in-flight requests", func() {
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn("in-flight requests did not finish in time", "error", err)
		}
	})
	if reconciler != nil {
		within(sctx, log, "reconciler", reconciler.Stop)
	}
	within(sctx, log, "batch writer", dd.Stop)
	within(sctx, log, "delivery", func() {
		if err := disp.Stop(sctx); err != nil {
			log.Warn("delivery queue not drained", "error", err)
		}
	})
	within(sctx, log, "pruner", func() { stopPruner.Do(pruner.Stop) })
	within(sctx, log, "destination record", func() { _ = reg.Stop(sctx) })
	if admin != nil {
		_ = admin.Close()
	}
	within(sctx, log, "Postgres pool", func() { closePool.Do(pool.Close) })
	log.Info("stopped")
	return nil
}

// firstOnly runs a function the first time only. Unlike sync.Once, a later
// call never waits for the first run, which may be stuck and left behind.
type firstOnly struct{ started atomic.Bool }

func (o *firstOnly) Do(f func()) {
	if o.started.CompareAndSwap(false, true) {
		f()
	}
}

// within runs one shutdown step and waits for it until ctx ends. A step
// still running then is logged and left behind.
func within(ctx context.Context, log *slog.Logger, step string, f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-ctx.Done():
		log.Warn("shutdown step did not finish within SHUTDOWN_TIMEOUT; left behind", "step", step)
	}
}

// openPool connects to Postgres, waiting up to startupTimeout for it to
// come up (instances often start before their database).
func openPool(ctx context.Context, c config, log *slog.Logger) (*pgxpool.Pool, error) {
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

func applyMigrations(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	mctx, cancel := context.WithTimeout(ctx, startupTimeout)
	defer cancel()
	applied, err := migrations.Apply(mctx, pool)
	if err != nil {
		return err
	}
	log.Info("schema migrated", "applied", applied, "version", migrations.Latest())
	return nil
}

// startAdmin serves /metrics, pprof, the detailed /readyz and, when cons
// is set, the console on addr; empty addr turns it off.
func startAdmin(addr string, m *metrics.Metrics, webhooks *receiver.Server, cons http.Handler, log *slog.Logger) *http.Server {
	if addr == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		d := webhooks.ReadinessDetail(r.Context())
		w.Header().Set("Content-Type", "application/json")
		if d.Status != receiver.ReadyStatus {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(d)
	})
	if cons != nil {
		mux.Handle("/console/", cons)
	}
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No WriteTimeout: a CPU profile takes its ?seconds= to write.
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener failed", "addr", addr, "error", err)
		}
	}()
	return srv
}
