package metrics

import (
	"context"

	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DeadLettersName is the gauge of the dead letters that exist now.
const DeadLettersName = "oncehook_dead_letters"

// DeadLetters registers oncehook_dead_letters{destination}: the dead
// letters of each destination (all instances; configured ones, and any
// other that has some), read by count at each scrape within timeout. A
// failed read reports -1 for each configured destination and counts a
// Postgres error.
func (m *Metrics) DeadLetters(configured []string, timeout time.Duration, count func(context.Context) (map[string]int64, error)) {
	if m == nil {
		return
	}
	m.Registry.MustRegister(&deadLetters{m: m, configured: configured, timeout: timeout, count: count,
		desc: prometheus.NewDesc(DeadLettersName,
			"Dead letters (deliveries out of attempts, waiting for a replay) by destination, now (all instances; each destination's counted up to 100000).",
			[]string{"destination"}, nil)})
}

// deadLetters is the collector behind DeadLetters: its destinations are
// known only when it reads them.
type deadLetters struct {
	m          *Metrics
	desc       *prometheus.Desc
	configured []string
	timeout    time.Duration
	count      func(context.Context) (map[string]int64, error)
}

func (d *deadLetters) Describe(ch chan<- *prometheus.Desc) { ch <- d.desc }

func (d *deadLetters) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	counts, err := d.count(ctx)
	if err != nil {
		d.m.PostgresError("gauge "+DeadLettersName, err)
		counts = map[string]int64{}
		for _, name := range d.configured {
			counts[name] = -1
		}
	}
	for name, n := range counts {
		ch <- prometheus.MustNewConstMetric(d.desc, prometheus.GaugeValue, float64(n), name)
	}
}
