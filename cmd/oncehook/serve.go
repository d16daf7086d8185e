package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/oncehook/oncehook/internal/service"
)

func newServeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Migrate, then serve until SIGTERM or SIGINT (the default command)",
		Long: `Check the configuration, apply the migrations, then receive webhooks on
LISTEN_ADDR and deliver them, until SIGTERM or SIGINT; then drain within
SHUTDOWN_TIMEOUT. Metrics, pprof and the console are on ADMIN_ADDR.

Configuration is read from the environment (see docs/configuration.md); "oncehook config"
checks it without connecting to anything.`,
		Args: noArgs,
		RunE: runServe,
	}
}

func newMigrateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply the embedded migrations and exit",
		Long: `Apply the migrations this binary embeds that the database lacks, under an
advisory lock (instances that start at once wait for each other), and exit.
serve migrates too; this is for a deploy step before the instances start.

Needs DATABASE_URL only.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return migrate(cmd.Context()) },
	}
}

func runServe(cmd *cobra.Command, _ []string) error { return serve(cmd.Context()) }

// migrate applies the migrations; it needs only DATABASE_URL.
func migrate(ctx context.Context) error {
	pool, err := adminPool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	return service.ApplyMigrations(ctx, pool, slog.Default())
}

// serve runs the receiver until ctx ends (SIGTERM or SIGINT) or its
// listener fails, then shuts it down within SHUTDOWN_TIMEOUT, in the order
// service.Service.Stop writes down. The wiring is service.New's, which the
// test harness shares.
func serve(ctx context.Context) error {
	c, err := loadConfig(os.LookupEnv)
	if err != nil {
		return err
	}
	if err := strayDestinationVars(os.Environ(), c.Destinations); err != nil {
		return err
	}
	log := newLogger(c)
	routeRedisLog(c, log)
	limitMemory(c, log)
	checkFileLimit(c, log)
	svc, err := service.New(ctx, c, service.WithLogger(log))
	if err != nil {
		return err
	}
	if err := svc.Start(ctx); err != nil {
		return err
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", c.ShutdownTimeout.String())
	case err := <-svc.Failed():
		log.Error("listener failed; shutting down", "error", err)
	}
	// Every step ends by one deadline, SHUTDOWN_TIMEOUT from now: a step
	// still running then is logged and left behind, as the process is
	// about to exit. The steps' errors are logged there; the exit is 0.
	sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownTimeout)
	defer cancel()
	_ = svc.Stop(sctx)
	log.Info("stopped")
	return nil
}
