package harness

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/receiver"
	"github.com/oncehook/oncehook/sink"
)

// Secret signs the test instances' webhooks.
const Secret = "whsec_test_oncehook_secret"

// Instance is one receiver (deduper, dispatcher and HTTP server) serving on
// a free port of 127.0.0.1, as cmd/receiver wires them.
type Instance struct {
	URL    string // the webhook URL
	Base   string // http://host:port
	Dedup  *dedup.Deduper
	server *receiver.Server
	disp   *delivery.Dispatcher
	pool   *pgxpool.Pool
	done   chan struct{}
}

// InstanceConfig says what an Instance shares with others.
type InstanceConfig struct {
	Pool      *pgxpool.Pool
	Redis     redis.UniversalClient // nil: Postgres alone
	KeyPrefix string
	RecentIDs int       // dedup.Config.RecentIDs: 0 remembers none
	Sink      sink.Sink // the one destination, default, unless Delivery.Destinations are set
	// Delivery tunes the dispatcher; its Pool and Sink are set from above.
	// FlushInterval defaults to 5ms here.
	Delivery delivery.DispatcherConfig
	// Tune, if set, adjusts the receiver's config before it starts.
	Tune func(*receiver.Config)
}

// StartInstance starts an instance; it is stopped when the test ends.
func StartInstance(t testing.TB, cfg InstanceConfig) *Instance {
	t.Helper()
	dc := cfg.Delivery
	dc.Pool, dc.Sink = cfg.Pool, cfg.Sink
	if dc.FlushInterval == 0 {
		dc.FlushInterval = 5 * time.Millisecond
	}
	dc = dc.WithDefaults()
	disp, err := delivery.NewDispatcher(dc)
	if err != nil {
		t.Fatal(err)
	}
	dd, err := dedup.New(dedup.Config{Pool: cfg.Pool, Redis: cfg.Redis, KeyPrefix: cfg.KeyPrefix, RecentIDs: cfg.RecentIDs, RedisBackoff: 100 * time.Millisecond,
		Lease: dc.Lease, Routes: disp.Routes()})
	if err != nil {
		t.Fatal(err)
	}
	v, err := receiver.NewVerifier([]string{Secret}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	rc := receiver.Config{Verifier: v, Deduper: dd, Queue: disp, Pool: cfg.Pool, Redis: cfg.Redis, MaxBodyBytes: 256 << 10}
	if cfg.Tune != nil {
		cfg.Tune(&rc)
	}
	srv, err := receiver.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	in := &Instance{
		Base: "http://" + ln.Addr().String(), Dedup: dd, server: srv, disp: disp, pool: cfg.Pool, done: make(chan struct{}),
	}
	in.URL = in.Base + receiver.WebhookPath
	go func() {
		defer close(in.done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(in.Stop)
	return in
}

// Pool is the Postgres pool the instance stores in.
func (in *Instance) Pool() *pgxpool.Pool { return in.pool }

// Stop shuts the instance down in cmd/receiver's order. It is idempotent.
func (in *Instance) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = in.server.Shutdown(ctx)
	<-in.done
	in.Dedup.Stop()
	_ = in.disp.Stop(ctx)
}
