// Package metrics holds oncehook's Prometheus collectors. Every method is
// safe on a nil *Metrics, which records nothing, so library code and tests
// need no registry.
package metrics

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Request outcomes, the label of oncehook_requests_total.
const (
	Accepted         = "accepted"
	Duplicate        = "duplicate"
	BadSignature     = "bad_signature"
	BadEvent         = "bad_event"
	TooLarge         = "too_large"
	MethodNotAllowed = "method_not_allowed"
	NotFound         = "not_found"
	Forbidden        = "forbidden"   // source not in STRIPE_IP_ALLOWLIST
	BadRequest       = "bad_request" // unreadable request
	Unavailable      = "unavailable" // Postgres failed: 503
	Overloaded       = "overloaded"  // intake queue full: 503
)

// Delivery results, the label of oncehook_deliveries_total.
const (
	Delivered = "delivered"
	Retry     = "retry" // failed, scheduled again
	Dead      = "dead"  // failed for the last time
	Stale     = "stale" // came after the lease was taken over; not applied
)

// Intake stages, the label of oncehook_intake_stage_seconds: where a
// webhook request's time goes before its answer is written.
const (
	StageVerify = "verify" // the signature check
	StageParse  = "parse"  // reading the event's fields
	StageRedis  = "redis"  // the claim in Redis, and any wait for another instance's
	StageCommit = "commit" // queued for, and in, the group-committed INSERT
	StageTotal  = "total"  // the handler, from the body in hand to the answer ready
)

// Metrics is every collector, registered on Registry.
type Metrics struct {
	Registry *prometheus.Registry

	requests       *prometheus.CounterVec
	requestsByName map[string]prometheus.Counter
	decisions      *prometheus.CounterVec
	batchRows      prometheus.Histogram
	commitSeconds  prometheus.Histogram
	stages         map[string]prometheus.Observer
	deliveries     *prometheus.CounterVec
	unrouted       prometheus.Counter
	reconciled     prometheus.Counter
	reconRejected  prometheus.Counter
	reconcileRuns  *prometheus.CounterVec
	redisErrors    *prometheus.CounterVec
	postgresErrors *prometheus.CounterVec
	failover       failoverMetrics
}

// New makes and registers every collector, plus the Go and process ones.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oncehook_requests_total", Help: "Webhook requests by outcome.",
		}, []string{"outcome"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oncehook_dedup_decisions_total",
			Help: "Verified deliveries by the dedup path that decided them (recent, redis_done, redis_await, inflight_wait, postgres, redis_fallback, postgres_only) and the outcome.",
		}, []string{"path", "outcome"}),
		batchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "oncehook_insert_batch_rows", Help: "Rows per group-committed INSERT.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "oncehook_insert_batch_seconds", Help: "Latency of one group-committed INSERT.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oncehook_deliveries_total", Help: "Delivery attempts by destination and result: delivered, retry (failed, scheduled again), dead (failed for the last time), stale (not applied: the lease was taken over).",
		}, []string{"destination", "result"}),
		unrouted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "oncehook_events_unrouted_total", Help: "Accepted events that matched no destination: stored, not delivered.",
		}),
		reconciled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "oncehook_reconciled_total", Help: "Events the reconciler found in Stripe's Events API but not in the ledger, and stored (source reconcile).",
		}),
		reconRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "oncehook_reconcile_rejected_total", Help: "Events listed by Stripe's Events API that oncehook cannot store (a webhook with such a body would get 400): skipped.",
		}),
		reconcileRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oncehook_reconcile_runs_total", Help: "Reconciler runs on this instance by result: ok, failed (the checkpoint stayed), skipped (another instance leads).",
		}, []string{"result"}),
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oncehook_redis_errors_total", Help: "Redis command failures by operation; each fell back to Postgres.",
		}, []string{"op"}),
		postgresErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oncehook_postgres_errors_total", Help: "Postgres statement failures by operation and SQLSTATE (53100: disk full; none: no answer from Postgres, such as a lost connection or a timeout).",
		}, []string{"op", "sqlstate"}),
	}
	stages := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "oncehook_intake_stage_seconds",
		Help:    "Time a webhook request spent in each intake stage: verify, parse, redis (claim and waits), commit (queue and INSERT), total (the handler).",
		Buckets: prometheus.ExponentialBuckets(0.00005, 2, 15), // 50 µs to 0.8 s
	}, []string{"stage"})
	m.stages = map[string]prometheus.Observer{}
	for _, st := range []string{StageVerify, StageParse, StageRedis, StageCommit, StageTotal} {
		m.stages[st] = stages.WithLabelValues(st)
	}
	m.requestsByName = map[string]prometheus.Counter{}
	for _, o := range []string{Accepted, Duplicate, BadSignature, BadEvent, TooLarge, MethodNotAllowed, NotFound, Forbidden, BadRequest, Unavailable, Overloaded} {
		m.requestsByName[o] = m.requests.WithLabelValues(o) // every outcome shows, at 0
	}
	for _, op := range []string{"claim", "mark done", "release"} {
		m.redisErrors.WithLabelValues(op)
	}
	// The writes show at 0 as failed for no answer and for a full disk, so
	// that the first failure of either is an increase.
	for _, op := range []string{"insert", "sweep", "write results", "wake order keys", "claim arrivals", "give back", "adopt", "prune"} {
		for _, code := range []string{NoSQLState, DiskFull} {
			m.postgresErrors.WithLabelValues(op, code)
		}
	}
	for _, r := range []string{"ok", "failed", "skipped"} {
		m.reconcileRuns.WithLabelValues(r)
	}
	m.Registry.MustRegister(stages, m.requests, m.decisions, m.batchRows, m.commitSeconds, m.deliveries, m.unrouted, m.reconciled, m.reconRejected, m.reconcileRuns,
		m.redisErrors, m.postgresErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.registerFailover()
	return m
}

// Request counts one webhook request's outcome.
func (m *Metrics) Request(outcome string) {
	if m == nil {
		return
	}
	if c, ok := m.requestsByName[outcome]; ok {
		c.Inc()
		return
	}
	m.requests.WithLabelValues(outcome).Inc()
}

// Decision counts how a verified delivery was decided.
func (m *Metrics) Decision(path, outcome string) {
	if m != nil {
		m.decisions.WithLabelValues(path, outcome).Inc()
	}
}

// Batch records one group-committed INSERT.
func (m *Metrics) Batch(rows int, took time.Duration) {
	if m != nil {
		m.batchRows.Observe(float64(rows))
		m.commitSeconds.Observe(took.Seconds())
	}
}

// Stage records the time one request spent in an intake stage since start.
func (m *Metrics) Stage(stage string, start time.Time) {
	if m != nil {
		m.stages[stage].Observe(time.Since(start).Seconds())
	}
}

// Destination shows every delivery result of destination, at 0.
func (m *Metrics) Destination(destination string) {
	if m != nil {
		for _, r := range []string{Delivered, Retry, Dead, Stale} {
			m.deliveries.WithLabelValues(destination, r)
		}
	}
}

// Deliveries counts n delivery attempts for destination with result.
func (m *Metrics) Deliveries(destination, result string, n int) {
	if m != nil && n > 0 {
		m.deliveries.WithLabelValues(destination, result).Add(float64(n))
	}
}

// Unrouted counts an accepted event that matched no destination.
func (m *Metrics) Unrouted() {
	if m != nil {
		m.unrouted.Inc()
	}
}

// Reconciled counts events the reconciler stored.
func (m *Metrics) Reconciled(n int) {
	if m != nil && n > 0 {
		m.reconciled.Add(float64(n))
	}
}

// ReconcileRejected counts a listed event the reconciler skipped.
func (m *Metrics) ReconcileRejected() {
	if m != nil {
		m.reconRejected.Inc()
	}
}

// ReconcileRun counts one reconciler run by result.
func (m *Metrics) ReconcileRun(result string) {
	if m != nil {
		m.reconcileRuns.WithLabelValues(result).Inc()
	}
}

// RedisError counts a failed Redis operation.
func (m *Metrics) RedisError(op string) {
	if m != nil {
		m.redisErrors.WithLabelValues(op).Inc()
	}
}

// SQLSTATEs, the sqlstate label of oncehook_postgres_errors_total besides
// the codes Postgres answers.
const (
	DiskFull   = "53100" // disk_full: "could not extend file", or a WAL write failed (then Postgres PANICs)
	NoSQLState = "none"  // no answer from Postgres: a lost connection, a refused one, a timeout
	BadCode    = "other" // not a SQLSTATE: five digits or capital letters
)

// PostgresError counts a failed Postgres operation by the SQLSTATE of err.
func (m *Metrics) PostgresError(op string, err error) {
	if m != nil {
		m.postgresErrors.WithLabelValues(op, SQLState(err)).Inc()
	}
}

// SQLState is the SQLSTATE Postgres answered err with (also when it
// refused a connection), NoSQLState when it did not answer, or BadCode for
// a code that is not five digits or capital letters: the label's values
// stay few and printable, whatever the server sends.
func SQLState(err error) string {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return NoSQLState
	}
	code := pgErr.Code
	if len(code) != 5 || strings.IndexFunc(code, func(r rune) bool { return (r < '0' || r > '9') && (r < 'A' || r > 'Z') }) >= 0 {
		return BadCode
	}
	return code
}

// Gauge registers a gauge whose value f reads at each scrape; labels are
// constant labels, such as the destination, and may be nil.
func (m *Metrics) Gauge(name, help string, labels prometheus.Labels, f func() float64) {
	if m != nil {
		m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels}, f))
	}
}

// QueryGauge registers a gauge read from Postgres at each scrape, bounded
// by timeout; a failed read reports -1 and counts a Postgres error.
func (m *Metrics) QueryGauge(name, help string, labels prometheus.Labels, timeout time.Duration, f func(context.Context) (float64, error)) {
	m.Gauge(name, help, labels, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		v, err := f(ctx)
		if err != nil {
			m.PostgresError("gauge "+name, err)
			return -1
		}
		return v
	})
}
