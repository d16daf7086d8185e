package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/oncehook/oncehook/console"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/startstop"
	"github.com/oncehook/oncehook/receiver"
)

// newConsole returns the console's handler, or nil (and says why in the
// log) when ADMIN_TOKEN or ADMIN_ADDR is not set.
func newConsole(c Config, pool *pgxpool.Pool, m *metrics.Metrics, webhooks *receiver.Server, names []string, log *slog.Logger) (*console.Console, error) {
	switch {
	case c.AdminAddr == "":
		return nil, nil
	case c.AdminToken == "":
		log.Info("console off: set ADMIN_TOKEN to serve it on ADMIN_ADDR under /console/", "admin_addr", c.AdminAddr)
		return nil, nil
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

// adminIndexPage is ADMIN_ADDR's / page; %s is the console's line.
const adminIndexPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>oncehook admin</title></head>
<body>
<h1>oncehook admin</h1>
<ul>
<li>%s</li>
<li><a href="/metrics">/metrics</a>: Prometheus metrics</li>
<li><a href="/readyz">/readyz</a>: readiness, with the state of Postgres and Redis</li>
<li><a href="/debug/pprof/">/debug/pprof/</a>: Go profiles</li>
</ul>
</body></html>
`

// adminIndex answers / on ADMIN_ADDR with links to what it serves; the
// console's only when it is on. Other unknown paths stay 404.
func adminIndex(console bool) http.Handler {
	line := `The console is off: set ADMIN_TOKEN to serve it here under /console/`
	if console {
		line = `<a href="/console/">/console/</a>: the console (events, dead letters, replay)`
	}
	page := []byte(fmt.Sprintf(adminIndexPage, line))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'none'")
		_, _ = w.Write(page)
	})
}

// adminServer serves /, /metrics, pprof, the detailed /readyz and, when the
// console is on, the console, on ADMIN_ADDR.
type adminServer struct {
	srv   *http.Server
	ln    net.Listener // bound by New, before anything else
	log   *slog.Logger
	state startstop.State
}

// guarded is what serves the console and guards the admin pages that
// tell more than /metrics: pprof (memory, command line, goroutines) and
// the detailed /readyz (hosts, users, databases in driver errors).
type guarded interface {
	http.Handler
	Protect(http.Handler) http.Handler
}

// newAdmin builds the admin server on ln, bound to ADMIN_ADDR, or returns
// nil when ln is nil (off). cons, when set (ADMIN_TOKEN is), is the
// console, and pprof and the detailed /readyz take its sign-in too; when
// nil they answer anyone who reaches ADMIN_ADDR, as /metrics and / always do.
func newAdmin(ln net.Listener, m *metrics.Metrics, webhooks *receiver.Server, cons guarded, log *slog.Logger) *adminServer {
	if ln == nil {
		return nil
	}
	protect := func(h http.Handler) http.Handler { return h }
	if cons != nil {
		protect = cons.Protect
	}
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", adminIndex(cons != nil))
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.Handle("/readyz", protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := webhooks.ReadinessDetail(r.Context())
		w.Header().Set("Content-Type", "application/json")
		if d.Status != receiver.ReadyStatus {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(d)
	})))
	if cons != nil {
		mux.Handle("/console/", cons)
	}
	mux.Handle("/debug/pprof/", protect(http.HandlerFunc(pprof.Index)))
	mux.Handle("/debug/pprof/cmdline", protect(http.HandlerFunc(pprof.Cmdline)))
	mux.Handle("/debug/pprof/profile", protect(http.HandlerFunc(pprof.Profile)))
	mux.Handle("/debug/pprof/symbol", protect(http.HandlerFunc(pprof.Symbol)))
	mux.Handle("/debug/pprof/trace", protect(http.HandlerFunc(pprof.Trace)))
	// No WriteTimeout: a CPU profile takes its ?seconds= to write.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute}
	return &adminServer{srv: srv, ln: ln, log: log}
}

// Start serves in the background; a listener that fails is logged, and
// the webhooks go on without it. A second Start does nothing.
func (a *adminServer) Start(ctx context.Context) error {
	return a.state.Start(ctx, func(context.Context) error {
		go func() {
			if err := a.srv.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error("admin listener failed", "addr", a.ln.Addr().String(), "error", err)
			}
		}()
		return nil
	})
}

// Stop closes the listener and every connection at once: the admin server
// is stopped near the end of the shutdown, after the drain it lets one
// watch. Stop before Start and a second Stop do nothing.
func (a *adminServer) Stop(ctx context.Context) error {
	return a.state.Stop(ctx, func(context.Context) error { return a.srv.Close() })
}
