package service

import (
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/redact"
	"github.com/oncehook/oncehook/reconcile"
	"github.com/oncehook/oncehook/sink"
	"github.com/oncehook/oncehook/stripeapi"
)

// StripeClient is the Events API client, or nil without STRIPE_API_KEY.
func StripeClient(s StripeConfig) (*stripeapi.Client, error) {
	if s.APIKey == "" {
		return nil, nil
	}
	return stripeapi.New(stripeapi.Config{Key: s.APIKey, Base: s.APIBase, Version: s.APIVersion})
}

// withThinFetch wraps every destination's sink so that it delivers the
// full event behind a thin one (THIN_EVENTS=fetch).
func withThinFetch(dests []delivery.Destination, client *stripeapi.Client) {
	for i := range dests {
		dests[i].Sink = &sink.ThinFetch{Next: dests[i].Sink, Fetch: client.FetchV2Event}
	}
}

// ReconcileMaxAge is how far back a reconciler window may start: an event
// older than RETENTION may have been delivered and pruned, and would be
// stored and delivered again; 1h of margin.
func ReconcileMaxAge(retention time.Duration) time.Duration {
	return min(retention-time.Hour, reconcile.MaxLookback)
}

// newReconciler returns the background reconciler, or nil when it is off
// (no STRIPE_API_KEY, or RECONCILE_INTERVAL=0); the start log says which.
func newReconciler(s StripeConfig, retention time.Duration, client *stripeapi.Client, pool *pgxpool.Pool, dd *dedup.Deduper, disp *delivery.Dispatcher,
	log *slog.Logger, m *metrics.Metrics) (*reconcile.Reconciler, error) {
	switch {
	case client == nil:
		log.Info("reconciler off: set STRIPE_API_KEY to recover events Stripe could not deliver")
		return nil, nil
	case s.ReconcileInterval == 0:
		log.Info("reconciler off: RECONCILE_INTERVAL=0")
		return nil, nil
	}
	r, err := reconcile.New(reconcile.Config{
		Lister: client, Pool: pool, Store: dd, Enqueue: disp.Enqueue,
		Interval: s.ReconcileInterval, Overlap: s.ReconcileOverlap, Lookback: s.ReconcileLookback, MaxAge: ReconcileMaxAge(retention),
		All: s.ReconcileAll, Types: s.ReconcileTypes, Logger: log, Metrics: m,
	})
	if err != nil {
		return nil, err
	}
	log.Info("reconciler on", "interval", s.ReconcileInterval.String(), "all", s.ReconcileAll, "types", len(s.ReconcileTypes),
		"api_base", redact.URL(s.APIBase), "api_version", s.APIVersion)
	return r, nil
}
