package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/console"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/receiver"
)

// newConsole returns the console's handler, or nil (and says why in the
// log) when ADMIN_TOKEN or ADMIN_ADDR is not set.
func newConsole(c config, pool *pgxpool.Pool, m *metrics.Metrics, webhooks *receiver.Server, log *slog.Logger) (http.Handler, error) {
	switch {
	case c.AdminAddr == "":
		return nil, nil
	case c.AdminToken == "":
		log.Info("console off: set ADMIN_TOKEN to serve it on ADMIN_ADDR under /console/", "admin_addr", c.AdminAddr)
		return nil, nil
	}
	names := make([]string, len(c.Destinations))
	for i, d := range c.Destinations {
		names[i] = d.Name
	}
	cons, err := console.New(console.Config{
		Token: c.AdminToken, Pool: pool, Metrics: m.Registry, Destinations: names, Log: log,
		Health: func(ctx context.Context) console.Health {
			d := webhooks.ReadinessDetail(ctx)
			return console.Health{Postgres: d.Postgres, PostgresError: d.PostgresError, Redis: d.Redis, RedisError: d.RedisError}
		},
	})
	if err != nil {
		return nil, err
	}
	log.Info("console on", "url", consoleURL(c.AdminAddr))
	return cons, nil
}

// consoleURL is where ADMIN_ADDR serves the console, as a browser on this
// host reaches it.
func consoleURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr + "/console/"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/console/"
}
