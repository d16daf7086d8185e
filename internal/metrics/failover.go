package metrics

import "github.com/prometheus/client_golang/prometheus"

// failoverMetrics count Postgres failovers and what healing them
// recovered.
type failoverMetrics struct {
	detected  prometheus.Counter
	recovered prometheus.Counter
	timeline  prometheus.Gauge
}

func (m *Metrics) registerFailover() {
	m.failover = failoverMetrics{
		detected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "oncehook_postgres_failovers_total",
			Help: "Postgres failovers (a new, higher timeline) this instance recorded; summed over instances, each failover counts once.",
		}),
		recovered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "oncehook_failover_recovered_events_total",
			Help: "Events a failover's heal found in Stripe's Events API but not in the promoted server's ledger, and stored (also in oncehook_reconciled_total).",
		}),
		timeline: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "oncehook_postgres_timeline",
			Help: "The timeline of the Postgres server this instance writes to; it rises at each promotion.",
		}),
	}
	m.Registry.MustRegister(m.failover.detected, m.failover.recovered, m.failover.timeline)
}

// Failover counts a failover this instance recorded.
func (m *Metrics) Failover() {
	if m != nil {
		m.failover.detected.Inc()
	}
}

// FailoverRecovered counts events a failover's heal stored.
func (m *Metrics) FailoverRecovered(n int) {
	if m != nil && n > 0 {
		m.failover.recovered.Add(float64(n))
	}
}

// PostgresTimeline sets the timeline of the server written to.
func (m *Metrics) PostgresTimeline(tl int64) {
	if m != nil {
		m.failover.timeline.Set(float64(tl))
	}
}
