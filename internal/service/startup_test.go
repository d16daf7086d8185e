package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/internal/buildinfo"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/service"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/migrations"
	"github.com/oncehook/oncehook/receiver"
	"github.com/oncehook/oncehook/route"
)

// startupConfig is a Config that New can build from DATABASE_URL alone.
func startupConfig(databaseURL string) service.Config {
	return service.Config{ListenAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", DatabaseURL: databaseURL,
		Secrets: []string{harness.Secret}, Tolerance: time.Minute}
}

// recordTo sends the service's one destination to a recording sink.
func recordTo() service.Option {
	return service.WithDestinations([]delivery.Destination{{Name: route.DefaultName, Sink: harness.NewRecordingSink()}})
}

// withSearchPath is TEST_DATABASE_URL whose connections use schema.
func withSearchPath(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	u, err := url.Parse(testenv.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", pool.Config().ConnConfig.RuntimeParams["search_path"])
	u.RawQuery = q.Encode()
	return u.String()
}

// logLines are a JSON log's lines, decoded.
func logLines(t *testing.T, log *harness.Buffer) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(log.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	return lines
}

func jsonLogger(buf *harness.Buffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestPortInUseStopsBeforeMigrating: with both listen addresses taken, New
// fails with an error naming both variables, and the empty schema that
// DATABASE_URL points at stays empty.
func TestPortInUseStopsBeforeMigrating(t *testing.T) {
	t.Parallel()
	var taken []string
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		taken = append(taken, ln.Addr().String())
	}
	empty := testenv.EmptySchema(t, testenv.DatabaseURL(t))
	cfg := startupConfig(withSearchPath(t, empty))
	cfg.ListenAddr, cfg.AdminAddr = taken[0], taken[1]

	svc, err := service.New(context.Background(), cfg, recordTo())
	if err == nil {
		_ = svc.Stop(context.Background())
		t.Fatal("New succeeded on taken addresses")
	}
	var bindErr *service.BindError
	if !errors.As(err, &bindErr) || len(bindErr.Addrs) != 2 || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("New: %v, want a BindError naming both addresses in use", err)
	}
	for _, want := range []string{"LISTEN_ADDR=" + taken[0], "ADMIN_ADDR=" + taken[1], "address already in use"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	ctx := context.Background()
	if v, err := migrations.Current(ctx, empty); err != nil || v != 0 {
		t.Errorf("schema version %d (%v) after a failed start, want 0: nothing migrated", v, err)
	}
	var tables int
	if err := empty.QueryRow(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()").Scan(&tables); err != nil || tables != 0 {
		t.Errorf("%d tables (%v) in the schema after a failed start, want 0", tables, err)
	}

	// One address taken: named alone, and the other one is released.
	free := testenv.FreeAddr(t)
	cfg.ListenAddr, cfg.AdminAddr = free, taken[1]
	if _, err := service.New(ctx, cfg, recordTo()); !errors.As(err, &bindErr) || len(bindErr.Addrs) != 1 ||
		bindErr.Addrs[0].Var != "ADMIN_ADDR" || strings.Contains(err.Error(), "LISTEN_ADDR") {
		t.Fatalf("New with ADMIN_ADDR taken: %v, want a BindError naming ADMIN_ADDR alone", err)
	}
	ln, err := net.Listen("tcp", free)
	if err != nil {
		t.Fatalf("LISTEN_ADDR is still bound after the failed start: %v", err)
	}
	ln.Close()
}

// TestPermanentPostgresErrorEndsTheStart: a database or a role that does
// not exist ends New at once (well within 10s), with an error that names
// DATABASE_URL without its password, and releases the listen addresses.
func TestPermanentPostgresErrorEndsTheStart(t *testing.T) {
	t.Parallel()
	base, err := url.Parse(testenv.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	const password = "pw-never-shown-" // the test server trusts, and ignores it
	for _, tt := range []struct {
		name, why string
		adjust    func(u *url.URL)
	}{
		{"database does not exist", "the database does not exist", func(u *url.URL) {
			u.User = url.UserPassword(base.User.Username(), password)
			u.Path = "/oncehook_missing_" + testenv.RandomHex(4)
		}},
		{"role does not exist", "the role does not exist", func(u *url.URL) {
			u.User = url.UserPassword("oncehook_nobody_"+testenv.RandomHex(4), password)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := *base
			tt.adjust(&u)
			cfg := startupConfig(u.String())
			cfg.ListenAddr = testenv.FreeAddr(t)
			var log harness.Buffer
			start := time.Now()
			svc, err := service.New(context.Background(), cfg, recordTo(), service.WithLogger(jsonLogger(&log)))
			took := time.Since(start)
			if err == nil {
				_ = svc.Stop(context.Background())
				t.Fatal("New succeeded")
			}
			if took > 10*time.Second {
				t.Errorf("New took %v, want under 10s", took)
			}
			msg := err.Error()
			for _, want := range []string{"DATABASE_URL", u.User.Username() + ":xxxxx@", tt.why, "not retried"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not name %q", msg, want)
				}
			}
			if strings.Contains(msg, password) || strings.Contains(log.String(), password) {
				t.Errorf("the password is shown: %q; log %s", msg, log.String())
			}
			if strings.Contains(log.String(), "waiting for Postgres") {
				t.Errorf("a permanent error was waited on: %s", log.String())
			}
			ln, err := net.Listen("tcp", cfg.ListenAddr)
			if err != nil {
				t.Fatalf("LISTEN_ADDR is still bound after the failed start: %v", err)
			}
			ln.Close()
		})
	}
}

// TestTransientPostgresErrorIsWaitedOut: a Postgres that refuses
// connections is waited for, and New goes on once it is up.
func TestTransientPostgresErrorIsWaitedOut(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t)
	pg.Stop(t)
	var log harness.Buffer
	type result struct {
		svc *service.Service
		err error
	}
	done := make(chan result, 1)
	go func() {
		svc, err := service.New(context.Background(), startupConfig(pg.URL()), recordTo(), service.WithLogger(jsonLogger(&log)))
		done <- result{svc, err}
	}()
	eventually.Require(t, 20*time.Second, "New waits for Postgres", func() bool {
		return strings.Count(log.String(), "waiting for Postgres") >= 2
	}, log.String)
	if !strings.Contains(log.String(), `"database_url":"postgres://postgres@127.0.0.1:`) {
		t.Errorf("the wait does not name DATABASE_URL with its user: %s", log.String())
	}
	pg.Start(t)
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("New after Postgres came up: %v", r.err)
		}
		if err := r.svc.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("New did not return once Postgres was up")
	}
}

// TestStartLineAndBuildInfo: the start line names the version, the
// schema and the Redis state (off, ok, or unreachable with a warning that
// names REDIS_URL without its password, the webhooks served through
// Postgres), for a redis+sentinel:// REDIS_URL too; oncehook_build_info
// carries the same.
func TestStartLineAndBuildInfo(t *testing.T) {
	t.Parallel()
	const password = "redis-pw-never-shown"
	unreachable := "redis://:" + password + "@" + testenv.FreeAddr(t) + "/0"
	for _, tt := range []struct {
		name      string
		opts      func(t *testing.T) []service.Option
		redisURL  string
		wantRedis string
	}{
		{"no Redis", func(*testing.T) []service.Option { return []service.Option{service.WithRedis(nil)} }, "", "off"},
		{"Redis up", func(t *testing.T) []service.Option {
			rdb, prefix := testenv.Redis(t)
			return []service.Option{service.WithRedis(rdb), service.WithDedup(func(c *dedup.Config) { c.KeyPrefix = prefix })}
		}, "", "ok"},
		{"Redis unreachable", func(*testing.T) []service.Option { return nil }, unreachable, "unreachable"},
		{"Sentinel unreachable", func(*testing.T) []service.Option { return nil },
			"redis+sentinel://:" + password + "@" + testenv.FreeAddr(t) + "/mymaster/0?sentinel_password=" + password, "unreachable"},
		{"Sentinel up", func(t *testing.T) []service.Option { return nil }, "", "ok"}, // REDIS_URL below: the Sentinel starts per subtest
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := startupConfig("")
			cfg.RedisURL, cfg.RedisTimeout = tt.redisURL, 100*time.Millisecond
			if tt.name == "Sentinel up" {
				cfg.RedisURL = testenv.StartRedisSentinel(t).URL()
			}
			var log harness.Buffer
			out := harness.NewRecordingSink()
			opts := append(tt.opts(t), service.WithPool(testenv.Postgres(t)), service.WithLogger(jsonLogger(&log)),
				service.WithDestinations([]delivery.Destination{{Name: route.DefaultName, Sink: out}}))
			svc, err := service.New(context.Background(), cfg, opts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = svc.Stop(context.Background()) })
			if err := svc.Start(context.Background()); err != nil {
				t.Fatal(err)
			}

			var start, warn map[string]any
			for _, l := range logLines(t, &log) {
				switch {
				case l["msg"] == "oncehook listening":
					start = l
				case strings.HasPrefix(l["msg"].(string), "REDIS_URL is unreachable"):
					warn = l
				}
			}
			if start == nil {
				t.Fatalf("no start line in %s", log.String())
			}
			want := map[string]any{"version": buildinfo.Version(), "commit": buildinfo.Commit(),
				"schema": float64(migrations.Latest()), "redis": tt.wantRedis}
			for k, v := range want {
				if start[k] != v {
					t.Errorf("start line %s = %v, want %v", k, start[k], v)
				}
			}
			if tt.wantRedis == "unreachable" {
				if warn == nil || warn["level"] != "WARN" || !strings.Contains(warn["redis_url"].(string), ":xxxxx@") {
					t.Errorf("no WARN naming REDIS_URL, redacted: %v", warn)
				}
			} else if warn != nil {
				t.Errorf("unexpected %v", warn)
			}
			if strings.Contains(log.String(), password) {
				t.Errorf("the Redis password is logged: %s", log.String())
			}

			// Served, also without Redis.
			id := "evt_start_" + testenv.RandomHex(4)
			if resp := harness.Post(t, "http://"+svc.Addr()+receiver.WebhookPath, harness.EventBody(id, "invoice.paid")); resp.Code != 200 {
				t.Fatalf("webhook: %d %s", resp.Code, resp.Body)
			}
			out.WaitFor(t, 10*time.Second, func(c map[string]int) bool { return c[id] == 1 })

			info := buildInfo(t, svc)
			wantInfo := map[string]string{"version": buildinfo.Version(), "commit": buildinfo.Commit(), "go": buildinfo.GoVersion(),
				"schema": strconv.Itoa(migrations.Latest())}
			for k, v := range wantInfo {
				if info[k] != v {
					t.Errorf("oncehook_build_info %s = %q, want %q", k, info[k], v)
				}
			}
		})
	}
}

// buildInfo is oncehook_build_info's labels, as the instance's /metrics
// would show them.
func buildInfo(t *testing.T, svc *service.Service) map[string]string {
	t.Helper()
	fams, err := svc.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "oncehook_build_info" {
			continue
		}
		if len(f.GetMetric()) != 1 || f.GetMetric()[0].GetGauge().GetValue() != 1 {
			t.Fatalf("oncehook_build_info: %v, want one series at 1", f.GetMetric())
		}
		labels := map[string]string{}
		for _, l := range f.GetMetric()[0].GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		return labels
	}
	t.Fatal("no oncehook_build_info")
	return nil
}
