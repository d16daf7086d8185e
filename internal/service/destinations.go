package service

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/oncehook/oncehook/admin"
	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/store"
)

// openDestinations opens every destination's sink; on an error it closes
// those already open.
func openDestinations(c Config) ([]delivery.Destination, error) {
	var out []delivery.Destination
	for _, d := range c.Destinations {
		s, err := d.Target.Open(d.Signer)
		if err != nil {
			closeSinks(out)
			return nil, fmt.Errorf("%s: %w", d.URLVar, err)
		}
		out = append(out, delivery.Destination{Name: d.Name, Filter: d.Filter, Sink: s,
			Workers: d.Workers, DeliveryTimeout: d.Timeout, MaxAttempts: d.MaxAttempts, Rate: d.Rate, MaxInFlight: d.MaxInFlight,
			OrderKey: d.OrderKey})
	}
	return out, nil
}

func closeSinks(dests []delivery.Destination) {
	for _, d := range dests {
		_ = d.Sink.Close()
	}
}

// warnOrphaned logs the destinations that have pending deliveries but are
// not configured: those stay untouched until the destination returns.
func warnOrphaned(ctx context.Context, pool *pgxpool.Pool, names []string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pending, err := store.New(pool).DestinationsWith(ctx, store.StatusPending)
	if err != nil {
		log.Warn("could not check for orphaned destinations", "error", err)
		return
	}
	for _, name := range pending {
		if !slices.Contains(names, name) {
			log.Warn("destination has pending deliveries but is not configured; they wait, untouched, until it is configured again (see `oncehook destinations`)",
				"destination", name)
		}
	}
}

// registerDestinationGauges adds each destination's queue depth, oldest
// pending age and dead letters.
func registerDestinationGauges(m *metrics.Metrics, disp *delivery.Dispatcher, pool *pgxpool.Pool, names []string) {
	st := store.New(pool)
	for _, name := range names {
		labels := prometheus.Labels{"destination": name}
		m.Gauge("oncehook_delivery_queue_depth", "Events waiting for a delivery worker in this process, by destination.", labels,
			func() float64 { n, _, _ := disp.DestinationQueue(name); return float64(n) })
		m.QueryGauge("oncehook_oldest_pending_age_seconds", "Age of the oldest event not yet delivered to the destination (all instances).",
			labels, time.Second, func(ctx context.Context) (float64, error) {
				age, err := st.OldestPendingAge(ctx, name)
				return age.Seconds(), err
			})
	}
	m.DeadLetters(names, time.Second, func(ctx context.Context) (map[string]int64, error) { return st.DeadLetterCounts(ctx, names) })
	ops := admin.New(st)
	m.QueryGauge("oncehook_deliveries_unserved", "Pending deliveries to destinations that no running instance serves (all instances; each destination's counted up to 100000): they wait until one does.",
		nil, time.Second, func(ctx context.Context) (float64, error) { n, err := ops.Unserved(ctx, names); return float64(n), err })
}

// newRegistration builds the part that records in Postgres the
// destination set this instance serves, and keeps its heartbeat fresh
// until Stop, which removes it: the commands and the console read what the
// running instances serve there.
func newRegistration(pool *pgxpool.Pool, instance string, dests []delivery.Destination, log *slog.Logger) (*admin.Registration, error) {
	served := make([]route.Destination, len(dests))
	for i, d := range dests {
		served[i] = route.Destination{Name: d.Name, Filter: d.Filter}
	}
	return admin.NewRegistration(admin.RegistrationConfig{Store: store.New(pool), Instance: instance, Destinations: served, Logger: log})
}

// destinationsLog describes the destinations for the start line, with
// credentials redacted.
func destinationsLog(dests []Destination) string {
	parts := make([]string, len(dests))
	for i, d := range dests {
		parts[i] = d.Name + "=" + d.Target.String()
	}
	return strings.Join(parts, " ")
}

// instances counts the Services this process built.
var instances atomic.Int64

// instanceName names a Service in the delivery history and the
// destination record: host:pid, and #N after it for the Nth Service of a
// process (tests run several), so that no two share their record.
func instanceName() string {
	host, _ := os.Hostname()
	name := fmt.Sprintf("%s:%d", host, os.Getpid())
	if n := instances.Add(1); n > 1 {
		name += fmt.Sprintf("#%d", n)
	}
	return name
}
