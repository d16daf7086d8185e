package harness

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/service"
	"github.com/oncehook/oncehook/receiver"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/sink"
)

// Secret signs the test instances' webhooks.
const Secret = "whsec_test_oncehook_secret"

// Instance is one receiver serving on a free port of 127.0.0.1, built and
// run by service.New, the wiring cmd/oncehook serves with.
type Instance struct {
	URL   string // the webhook URL
	Base  string // http://host:port
	Dedup *dedup.Deduper
	svc   *service.Service
}

// InstanceConfig says what an Instance shares with others.
type InstanceConfig struct {
	Pool      *pgxpool.Pool
	Redis     redis.UniversalClient // nil: Postgres alone
	KeyPrefix string
	RecentIDs int       // dedup.Config.RecentIDs: 0 remembers none
	Sink      sink.Sink // the one destination, default, unless Delivery.Destinations are set
	// Delivery tunes the dispatcher; its Pool, Sink and Destinations go to
	// service.New as options. FlushInterval defaults to 5ms here.
	Delivery delivery.DispatcherConfig
	// Tune, if set, adjusts the receiver's config before it starts.
	Tune func(*receiver.Config)
}

// StartInstance builds an instance through service.New and starts it; it
// is stopped when the test ends. The instance has no admin server and no
// reconciler, runs the pruner as production does (RETENTION's default:
// it deletes nothing a test made in the last 30 days), and stores in
// cfg.Pool (migrated, and left open).
func StartInstance(t testing.TB, cfg InstanceConfig) *Instance {
	t.Helper()
	dests := cfg.Delivery.Destinations
	if len(dests) == 0 {
		dests = []delivery.Destination{{Name: route.DefaultName, Sink: cfg.Sink}}
	}
	tuned := cfg.Delivery
	if tuned.FlushInterval == 0 {
		tuned.FlushInterval = 5 * time.Millisecond
	}
	sc := service.Config{
		ListenAddr: "127.0.0.1:0", Secrets: []string{Secret}, Tolerance: 5 * time.Minute, MaxBodyBytes: 256 << 10,
		RedisKeyPrefix: cfg.KeyPrefix, DedupRecentIDs: cfg.RecentIDs, QueueSize: tuned.QueueSize, QueueMaxBytes: int(tuned.QueueMaxBytes),
		DeliveryLease: tuned.Lease,
	}
	opts := []service.Option{
		service.WithPool(cfg.Pool), service.WithRedis(cfg.Redis), service.WithDestinations(dests),
		service.WithDelivery(func(dc *delivery.DispatcherConfig) {
			// The test's tuning, with what the wiring built: the pool,
			// the destinations, the logger, the metrics, and what paces
			// rated destinations (Redis, its prefix, the instance count).
			c := tuned
			c.Pool, c.Destinations, c.Sink, c.Logger, c.Metrics = dc.Pool, dc.Destinations, nil, dc.Logger, dc.Metrics
			c.Redis, c.RedisKeyPrefix, c.Instances = dc.Redis, dc.RedisKeyPrefix, dc.Instances
			*dc = c
		}),
		service.WithDedup(func(c *dedup.Config) { c.RedisBackoff = 100 * time.Millisecond }),
	}
	if cfg.Tune != nil {
		opts = append(opts, service.WithReceiver(cfg.Tune))
	}
	ctx := context.Background()
	svc, err := service.New(ctx, sc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	in := &Instance{Dedup: svc.Deduper(), svc: svc}
	t.Cleanup(in.Stop)
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	in.Base = "http://" + svc.Addr()
	in.URL = in.Base + receiver.WebhookPath
	return in
}

// Metrics is the instance's metrics registry.
func (in *Instance) Metrics() *metrics.Metrics { return in.svc.Metrics() }

// Pool is the Postgres pool the instance stores in.
func (in *Instance) Pool() *pgxpool.Pool { return in.svc.Pool() }

// Stop shuts the instance down through service.Service.Stop, within 10s.
// It is idempotent.
func (in *Instance) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = in.svc.Stop(ctx)
}
