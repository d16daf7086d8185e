package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/oncehook/oncehook/admin"
	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/internal/buildinfo"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/redact"
	"github.com/oncehook/oncehook/internal/startstop"
	"github.com/oncehook/oncehook/migrations"
	"github.com/oncehook/oncehook/receiver"
	"github.com/oncehook/oncehook/reconcile"
)

// Option adjusts how New builds a Service: shared pools, injected sinks,
// tuned timings. The command passes only WithLogger.
type Option func(*options)

type options struct {
	log          *slog.Logger
	pool         *pgxpool.Pool
	redis        redis.UniversalClient
	redisSet     bool
	destinations []delivery.Destination
	noPruner     bool
	pruner       func(*delivery.PrunerConfig)
	delivery     func(*delivery.DispatcherConfig)
	dedup        func(*dedup.Config)
	receiver     func(*receiver.Config)
}

// WithLogger logs to log instead of slog.Default().
func WithLogger(log *slog.Logger) Option { return func(o *options) { o.log = log } }

// WithPool uses pool, already migrated, instead of opening DATABASE_URL;
// Stop leaves it open.
func WithPool(pool *pgxpool.Pool) Option { return func(o *options) { o.pool = pool } }

// WithRedis uses rdb (nil: Postgres alone) instead of opening REDIS_URL;
// Stop leaves it open.
func WithRedis(rdb redis.UniversalClient) Option {
	return func(o *options) { o.redis, o.redisSet = rdb, true }
}

// WithDestinations delivers to these destinations, their sinks open,
// instead of opening Config.Destinations. The Service owns the sinks from
// then on: Stop closes them.
func WithDestinations(dests []delivery.Destination) Option {
	return func(o *options) { o.destinations = dests }
}

// WithoutPruner builds no pruner: for a test instance whose ledger holds
// rows older than RETENTION that the test needs. The harness's instances
// run the pruner, as production does.
func WithoutPruner() Option { return func(o *options) { o.noPruner = true } }

// WithPruner adjusts the pruner's config before it is built: a test's
// shorter Interval.
func WithPruner(tune func(*delivery.PrunerConfig)) Option {
	return func(o *options) { o.pruner = tune }
}

// WithDelivery adjusts the dispatcher's config before it is built.
func WithDelivery(tune func(*delivery.DispatcherConfig)) Option {
	return func(o *options) { o.delivery = tune }
}

// WithDedup adjusts the deduper's config before it is built.
func WithDedup(tune func(*dedup.Config)) Option { return func(o *options) { o.dedup = tune } }

// WithReceiver adjusts the webhook receiver's config before it is built.
func WithReceiver(tune func(*receiver.Config)) Option { return func(o *options) { o.receiver = tune } }

// Service is one receiver instance: every part New built, run by Start
// and stopped, in the one order that keeps the guarantees, by Stop.
type Service struct {
	cfg      Config
	log      *slog.Logger
	metrics  *metrics.Metrics
	pool     *pgxpool.Pool
	rdb      redis.UniversalClient // nil: Postgres alone
	ownPool  bool                  // opened by New, closed by Stop
	ownRedis bool
	dests    []delivery.Destination
	destsLog string
	redis    string    // the start line's Redis state: redisOff, redisOK or redisUnreachable
	lns      listeners // bound by New; closed by the servers, or by release

	disp       *delivery.Dispatcher
	pruner     *delivery.Pruner    // nil: WithoutPruner
	record     *admin.Registration // this instance's destination set, in Postgres
	dedup      *dedup.Deduper
	webhooks   *listener
	admin      *adminServer          // nil: ADMIN_ADDR is empty
	reconciler *reconcile.Reconciler // nil: off
	timeline   *timelineWatch        // notices Postgres failovers
	healer     *reconcile.Healer     // nil: no STRIPE_API_KEY

	state       startstop.State
	deliveryRan bool      // the dispatcher started, and so closes the sinks
	released    sync.Once // the pools and sinks of a Service that never ran
	sinksClosed sync.Once
	closePool   firstOnly
}

// New builds every part of an instance from cfg, without starting any.
// First it binds LISTEN_ADDR and ADMIN_ADDR, so that an address taken by
// another process (a *BindError naming each) stops the start before
// anything is changed; then it opens the Postgres pool (waiting for
// Postgres, but not past a permanent refusal, then migrating) and the
// Redis client unless given, and the destinations' sinks unless given.
// An unreachable Redis is a warning. Start runs the instance; Stop stops
// it and releases what New opened, also when Start was never called.
func New(ctx context.Context, cfg Config, opts ...Option) (_ *Service, err error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	s := &Service{cfg: cfg, log: o.log, pool: o.pool, rdb: o.redis, metrics: metrics.New()}
	if s.log == nil {
		s.log = slog.Default()
	}
	defer func() {
		if err != nil {
			s.release()
		}
	}()
	log := s.log
	if s.lns, err = bind(cfg); err != nil {
		return nil, err
	}
	s.timeline = newTimelineWatch(log, s.metrics, cfg.Stripe.ReconcileOverlap, cfg.Stripe.APIKey != "")
	if s.pool == nil {
		if s.pool, err = openPool(ctx, cfg, log, s.timeline.hook); err != nil {
			return nil, err
		}
		s.ownPool = true
		if err := ApplyMigrations(ctx, s.pool, log); err != nil {
			return nil, err
		}
	}
	s.timeline.pool = s.pool
	if !o.redisSet && cfg.RedisURL != "" {
		client, err := dedup.NewRedisClient(cfg.RedisURL, cfg.RedisTimeout)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", redact.Error(err, cfg.RedisURL))
		}
		s.rdb, s.ownRedis = client, true
	}
	s.redis = checkRedis(ctx, s.rdb, cfg.RedisURL, log)
	m := s.metrics
	m.SetBuildInfo(metrics.BuildInfo{Version: buildinfo.Version(), Commit: buildinfo.Commit(), Go: buildinfo.GoVersion(),
		Schema: migrations.Latest()})
	stripeAPI, err := StripeClient(cfg.Stripe)
	if err != nil {
		return nil, err
	}
	if s.dests = o.destinations; s.dests == nil {
		if s.dests, err = openDestinations(cfg); err != nil {
			return nil, err
		}
		s.destsLog = destinationsLog(cfg.Destinations)
	}
	names := make([]string, len(s.dests))
	for i, d := range s.dests {
		names[i] = d.Name
	}
	if s.destsLog == "" {
		s.destsLog = strings.Join(names, " ")
	}
	if cfg.Stripe.ThinEvents == "fetch" {
		withThinFetch(s.dests, stripeAPI)
	}
	instance := instanceName()
	dc := delivery.DispatcherConfig{
		Pool: s.pool, Destinations: s.dests, QueueSize: cfg.QueueSize, QueueMaxBytes: int64(cfg.QueueMaxBytes),
		Lease: cfg.DeliveryLease, Instance: instance, Logger: log, Metrics: m,
		Instances: liveInstances(s.pool, instance),
	}
	if s.rdb != nil {
		dc.Redis = s.rdb
		if dc.RedisKeyPrefix, err = rateKeyPrefix(ctx, cfg, s.pool, s.dests); err != nil {
			return nil, err
		}
	}
	if o.delivery != nil {
		o.delivery(&dc)
	}
	dc = dc.WithDefaults()
	if s.disp, err = delivery.NewDispatcher(dc); err != nil {
		return nil, err
	}
	warnOrphaned(ctx, s.pool, names, log)
	if s.record, err = newRegistration(s.pool, instance, s.dests, log); err != nil {
		return nil, err
	}
	if !o.noPruner {
		pc := delivery.PrunerConfig{Pool: s.pool, Retention: cfg.Retention, Duty: float64(cfg.PruneDuty) / 100, Logger: log, Metrics: m}
		if o.pruner != nil {
			o.pruner(&pc)
		}
		if s.pruner, err = delivery.NewPruner(pc); err != nil {
			return nil, err
		}
	}
	ddc := dedup.Config{Pool: s.pool, Redis: s.rdb, KeyPrefix: cfg.RedisKeyPrefix, DoneTTL: cfg.DedupTTL, Lease: dc.Lease,
		RecentIDs: cfg.DedupRecentIDs, Routes: s.disp.Routes(), Logger: log, Metrics: m}
	if o.dedup != nil {
		o.dedup(&ddc)
	}
	if s.dedup, err = dedup.New(ddc); err != nil {
		return nil, err
	}
	s.timeline.subscribe(s.dedup.Forget)
	if s.reconciler, err = newReconciler(cfg.Stripe, cfg.Retention, stripeAPI, s.pool, s.dedup, s.disp, log, m); err != nil {
		return nil, err
	}
	if stripeAPI != nil {
		if s.healer, err = reconcile.NewHealer(reconcile.HealerConfig{Lister: stripeAPI, Pool: s.pool, Store: s.dedup,
			Enqueue: s.disp.Enqueue, Types: cfg.Stripe.ReconcileTypes, MaxAge: ReconcileMaxAge(cfg.Retention),
			Logger: log, Metrics: m}); err != nil {
			return nil, err
		}
	}
	verifier, err := receiver.NewVerifier(cfg.Secrets, cfg.Tolerance)
	if err != nil {
		return nil, err
	}
	rc := receiver.Config{
		Verifier: verifier, Deduper: s.dedup, Queue: s.disp, Pool: s.pool, Redis: s.rdb,
		MaxBodyBytes: cfg.MaxBodyBytes, Logger: log, Metrics: m,
		Concurrency: cfg.MaxConcurrency, MaxConns: cfg.MaxConnections, MaxBodyBytesInFlight: cfg.MaxInflightBytes,
		MaxConnsPerIP: cfg.MaxConnsPerIP, ReadTimeout: cfg.ReadTimeout, IdleTimeout: cfg.IdleTimeout,
		Allowlist: cfg.Allowlist, TrustedProxies: cfg.TrustedProxies, TLSCertFile: cfg.TLSCertFile, TLSKeyFile: cfg.TLSKeyFile,
	}
	if o.receiver != nil {
		o.receiver(&rc)
	}
	srv, err := receiver.New(rc)
	if err != nil {
		return nil, err
	}
	registerDestinationGauges(m, s.disp, s.pool, names)
	cons, err := newConsole(cfg, s.pool, m, srv, names, log)
	if err != nil {
		return nil, err
	}
	s.webhooks = newListener(srv, s.lns.webhook)
	var guard guarded // nil, not a nil *console.Console: the console is off
	if cons != nil {
		guard = cons
	}
	s.admin = newAdmin(s.lns.admin, m, srv, guard, log)
	return s, nil
}

// part is the lifecycle every background part has.
type part interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Start starts the parts: delivery first, so that what the intake hands
// over has workers, then the record of the destinations it serves, the
// timeline watch (which records the Postgres timeline, and a failover
// that happened while no instance ran, before any webhook is taken), and
// the webhook listener once everything behind it runs; the reconciler
// and the failover healer last. The parts run until Stop, not until ctx
// ends: Stop drains them within its own deadline. When a part fails to
// start, Start stops those it started, releases what New opened and
// returns the error. A second Start does nothing; a Start after Stop
// returns startstop.ErrStopped.
func (s *Service) Start(ctx context.Context) error {
	return s.state.Start(ctx, func(ctx context.Context) error {
		parts := []part{s.disp, s.record}
		if s.pruner != nil {
			parts = append(parts, s.pruner)
		}
		parts = append(parts, s.dedup, s.timeline, s.webhooks)
		if s.admin != nil {
			parts = append(parts, s.admin)
		}
		if s.reconciler != nil {
			parts = append(parts, s.reconciler)
		}
		if s.healer != nil {
			parts = append(parts, s.healer)
		}
		for _, p := range parts {
			err := p.Start(ctx)
			if err == nil && p == part(s.disp) {
				s.deliveryRan = true
			}
			if err != nil {
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				defer cancel()
				_ = s.stop(sctx) // stops the parts started, releases the rest
				return err
			}
		}
		s.log.Info("oncehook listening", "version", buildinfo.Version(), "commit", buildinfo.Commit(), "schema", migrations.Latest(),
			"addr", s.webhooks.bound, "admin_addr", s.cfg.AdminAddr, "destinations", s.destsLog,
			"redis", s.redis, "secrets", len(s.cfg.Secrets), "tls", s.cfg.TLSCertFile != "", "allowlist", len(s.cfg.Allowlist))
		return nil
	})
}

// Stop shuts the instance down; see stop for the order. Every step ends by
// ctx's end (SHUTDOWN_TIMEOUT in the command): a step still running then
// is logged and left behind, as the process is about to exit. It returns
// the steps' errors, which are logged too. A Service that never started
// only releases what New opened; a second Stop does nothing.
func (s *Service) Stop(ctx context.Context) error {
	err := s.state.Stop(ctx, s.stop)
	if !s.state.Started() {
		s.release()
	}
	return err
}

// stop is the one place the shutdown order is written. Each step needs
// the ones after it to still run:
//  1. the webhook listener: /readyz fails, no new request comes in, and
//     those in flight finish; each is answered 200 only once its event is
//     committed, so none is left between the two;
//  2. the reconciler and the failover healer, which store through the
//     deduper and hand over to delivery, as a request does; the timeline
//     watch, which tells the deduper of a failover;
//  3. the deduper's batch writer (the intake's group commit): it flushes
//     what is queued, then its Redis pipelines stop;
//  4. delivery: the adopter and the sweepers stop, the workers drain their
//     queues until the last quarter of the time (at most 2s), then what
//     is left is aborted and stays pending; the last results are written
//     and the sinks closed;
//  5. the pruner;
//  6. the destination record: this instance's set is removed, as it no
//     longer delivers;
//  7. the admin and console server, which served /metrics throughout;
//  8. the Postgres pool and the Redis client, if New opened them: every
//     step above uses them.
func (s *Service) stop(ctx context.Context) error {
	var mu sync.Mutex // a step left behind may still fail
	var errs []error
	step := func(name string, p part, warn string) {
		within(ctx, s.log, name, func() {
			if err := p.Stop(ctx); err != nil {
				if warn != "" {
					s.log.Warn(warn, "error", err)
				}
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				mu.Unlock()
			}
		})
	}
	step("listener and in-flight requests", s.webhooks, "in-flight requests did not finish in time")
	if s.reconciler != nil {
		step("reconciler", s.reconciler, "")
	}
	if s.healer != nil {
		step("failover healer", s.healer, "")
	}
	step("timeline watch", s.timeline, "")
	step("batch writer", s.dedup, "")
	step("delivery", s.disp, "delivery queue not drained")
	if s.pruner != nil {
		step("pruner", s.pruner, "")
	}
	step("destination record", s.record, "")
	if s.admin != nil {
		step("admin server", s.admin, "")
	}
	if !s.deliveryRan {
		s.closeSinks() // delivery, which closes them, never ran
	}
	s.lns.close() // those of servers that never started
	within(ctx, s.log, "Postgres pool", s.closePools)
	mu.Lock()
	defer mu.Unlock()
	return errors.Join(errs...)
}

// release closes what New opened, for a Service that never ran.
func (s *Service) release() {
	s.released.Do(func() {
		s.lns.close()
		if !s.deliveryRan {
			s.closeSinks()
		}
		s.closePools()
	})
}

func (s *Service) closeSinks() { s.sinksClosed.Do(func() { closeSinks(s.dests) }) }

func (s *Service) closePools() {
	s.closePool.Do(func() {
		if s.ownPool && s.pool != nil {
			s.pool.Close()
		}
		if s.ownRedis && s.rdb != nil {
			_ = s.rdb.Close()
		}
	})
}

// Failed receives what the webhook listener's Serve returned, if it ended
// before Stop: the instance cannot take webhooks any more.
func (s *Service) Failed() <-chan error { return s.webhooks.failed }

// Addr is the address the webhook listener is bound to (by New).
func (s *Service) Addr() string { return s.webhooks.bound }

// Deduper is the instance's deduper.
func (s *Service) Deduper() *dedup.Deduper { return s.dedup }

// Pool is the Postgres pool the instance stores in.
func (s *Service) Pool() *pgxpool.Pool { return s.pool }

// Metrics is the instance's metrics registry.
func (s *Service) Metrics() *metrics.Metrics { return s.metrics }

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
