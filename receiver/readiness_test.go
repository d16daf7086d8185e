package receiver_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/receiver"
)

// noQueue satisfies receiver.Enqueuer for a Server that never accepts an
// event; calling it panics.
type noQueue struct{ receiver.Enqueuer }

// readinessServer is a Server on pool and a Redis at redisAddr (either may
// refuse connections); its log goes to the returned buffer.
func readinessServer(t *testing.T, pool *pgxpool.Pool, redisAddr string) (*receiver.Server, *harness.Buffer) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr, Password: "redispassword", MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	dd, err := dedup.New(dedup.Config{Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	if err := dd.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dd.Stop(context.Background()) })
	v, err := receiver.NewVerifier([]string{"whsec_readiness_test"}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	logs := new(harness.Buffer)
	srv, err := receiver.New(receiver.Config{
		Verifier: v, Deduper: dd, Queue: noQueue{}, Pool: pool, Redis: rdb,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv, logs
}

// TestReadyzPublicAnswerNamesOnlyState: /readyz is on the public listener;
// it says which dependency is down, never the driver's error, which names
// hosts, ports, the database user and the database.
func TestReadyzPublicAnswerNamesOnlyState(t *testing.T) {
	t.Parallel()
	pgAddr, redisAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	databaseURL := "postgres://secretuser:secretpassword@" + pgAddr + "/secretdb?sslmode=disable&application_name=secretapp"
	pool, err := pgxpool.New(context.Background(), databaseURL) // connects lazily
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	srv, logs := readinessServer(t, pool, redisAddr)

	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/readyz")
	srv.Handle(&ctx)
	body := string(ctx.Response.Body())
	if code := ctx.Response.StatusCode(); code != fasthttp.StatusServiceUnavailable {
		t.Errorf("/readyz: %d, want 503", code)
	}
	if want := `{"status":"not ready","postgres":"down","redis":"down"}`; body != want {
		t.Errorf("/readyz body %s, want %s", body, want)
	}
	_, pgPort, _ := net.SplitHostPort(pgAddr)
	_, redisPort, _ := net.SplitHostPort(redisAddr)
	for _, leak := range []string{"127.0.0.1", pgPort, redisPort, "secretuser", "secretpassword", "secretdb", "secretapp", "dial", "refused"} {
		if strings.Contains(body, leak) {
			t.Errorf("/readyz body names %q: %s", leak, body)
		}
	}

	// The reasons are for operators: the admin listener and the log.
	d := srv.ReadinessDetail(context.Background())
	if d.Status != receiver.NotReadyStatus || d.Postgres != receiver.StateDown || d.Redis != receiver.StateDown {
		t.Errorf("ReadinessDetail states: %+v", d)
	}
	if !strings.Contains(d.PostgresError, pgAddr) || !strings.Contains(d.PostgresError, "secretuser") || !strings.Contains(d.PostgresError, "secretdb") {
		t.Errorf("ReadinessDetail.PostgresError = %q, want the driver's error naming %s, the user and the database", d.PostgresError, pgAddr)
	}
	if !strings.Contains(d.RedisError, redisAddr) {
		t.Errorf("ReadinessDetail.RedisError = %q, want the driver's error naming %s", d.RedisError, redisAddr)
	}
	for _, secret := range []string{"secretpassword", "secretapp", "redispassword"} {
		if strings.Contains(d.PostgresError+d.RedisError, secret) {
			t.Errorf("ReadinessDetail names %q: %+v", secret, d)
		}
	}
	log := logs.String()
	if !strings.Contains(log, "postgres down") || !strings.Contains(log, "secretdb") || !strings.Contains(log, "redis down") || !strings.Contains(log, redisAddr) {
		t.Errorf("the log lacks the reasons:\n%s", log)
	}
	if strings.Contains(log, "secretpassword") || strings.Contains(log, "redispassword") {
		t.Errorf("the log names a password:\n%s", log)
	}
}

// TestReadyzNotMigrated: a reachable Postgres without the schema is
// not_migrated, with the versions in the detail only.
func TestReadyzNotMigrated(t *testing.T) {
	t.Parallel()
	srv, _ := readinessServer(t, testenv.EmptySchema(t, testenv.DatabaseURL(t)), testenv.FreeAddr(t))

	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/readyz")
	srv.Handle(&ctx)
	if body, want := string(ctx.Response.Body()), `{"status":"not ready","postgres":"not_migrated","redis":"down"}`; ctx.Response.StatusCode() != 503 || body != want {
		t.Errorf("/readyz: %d %s, want 503 %s", ctx.Response.StatusCode(), body, want)
	}
	if d := srv.ReadinessDetail(context.Background()); d.Postgres != receiver.StateNotMigrated || !strings.Contains(d.PostgresError, "oncehook migrate") {
		t.Errorf("ReadinessDetail: %+v", d)
	}
}

// readyz answers /readyz as the public listener does, in process.
func readyz(srv *receiver.Server) (int, string) {
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/readyz")
	srv.Handle(&ctx)
	return ctx.Response.StatusCode(), string(ctx.Response.Body())
}

// unpingedPool is a pool on url's migrated test schema whose idle
// connections are never pinged when acquired, as under load, when each
// was used within the last second (pgxpool pings only those idle
// longer): a connection that died idle is handed out as it is.
func unpingedPool(t *testing.T, url string, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg := testenv.Schema(t, url).Config()
	cfg.MaxConns = maxConns
	cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// widen has every connection pool may hold open and idle.
func widen(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	var conns []*pgxpool.Conn
	for range pool.Config().MaxConns {
		c, err := pool.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}
}

// TestReadyzFloodChecksAtMostOncePerSecond: a flood of concurrent /readyz
// requests checks Postgres and Redis at most about once a second, and
// still sees Postgres stop (503 within 3s, about 1-2) and come back (200 within 3s);
// Shutdown answers "shutting down" at once.
func TestReadyzFloodChecksAtMostOncePerSecond(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t)
	srv, _ := readinessServer(t, unpingedPool(t, pg.URL(), 4), testenv.FreeAddr(t))

	var (
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		requests atomic.Int64
		last     atomic.Int32 // the latest answer's status
	)
	start := time.Now()
	for range 32 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, _ := readyz(srv)
				last.Store(int32(code))
				requests.Add(1)
			}
		})
	}
	stopFlood := func() {
		close(stop)
		wg.Wait()
	}
	defer func() {
		select {
		case <-stop:
		default:
			stopFlood()
		}
	}()
	eventually.Require(t, 2*time.Second, "200 under the flood", func() bool { return last.Load() == 200 })
	time.Sleep(2 * time.Second) // intended: the flood runs against a steady state

	pg.Stop(t)
	stopped := time.Now()
	eventually.Require(t, 3*time.Second, "503 once Postgres stopped", func() bool { return last.Load() == 503 })
	toDown := time.Since(stopped)
	pg.Start(t)
	started := time.Now()
	eventually.Require(t, 3*time.Second, "200 once Postgres is back", func() bool { return last.Load() == 200 })
	toUp := time.Since(started)
	stopFlood()

	elapsed := time.Since(start)
	checks, n := srv.ReadinessChecks(), requests.Load()
	t.Logf("%d /readyz in %s (%.0f/s) from 32 goroutines: %d checks (%.2f/s); 503 %s after Postgres stopped, 200 %s after it was back",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), checks, float64(checks)/elapsed.Seconds(),
		toDown.Round(time.Millisecond), toUp.Round(time.Millisecond))
	if limit := int64(elapsed/time.Second) + 2; checks > limit {
		t.Errorf("%d checks in %s, want at most %d (one a second)", checks, elapsed, limit)
	}
	if n < 10*checks {
		t.Errorf("only %d requests for %d checks: the flood did not flood", n, checks)
	}

	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, body := readyz(srv); code != 503 || !strings.Contains(body, `"status":"shutting down"`) {
		t.Errorf("/readyz after Shutdown: %d %s, want 503 shutting down", code, body)
	}
}

// TestReadyzRecoversFromDeadConnections: after Postgres restarts, the
// pool's idle connections are dead; the first check once Postgres is back
// goes past every one of them (each is discarded as it fails) and answers
// 200, rather than failing once a second until the pool has drawn them all.
func TestReadyzRecoversFromDeadConnections(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t)
	pool := unpingedPool(t, pg.URL(), 8)
	srv, _ := readinessServer(t, pool, testenv.FreeAddr(t))
	if code, body := readyz(srv); code != 200 {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	widen(t, pool)
	pg.Stop(t)
	pg.Start(t)
	back, checks := time.Now(), srv.ReadinessChecks()
	// The first answer from a check begun after the restart (not from
	// the state cached before it) is 200.
	var code int
	var body string
	eventually.Require(t, 2*time.Second, "a check after the restart", func() bool {
		code, body = readyz(srv)
		return srv.ReadinessChecks() > checks
	})
	if code != 200 {
		t.Fatalf("/readyz from the first check after the restart, the pool holding %d dead connections: %d %s, want 200",
			pool.Config().MaxConns, code, body)
	}
	t.Logf("/readyz 200 %s after Postgres was back, from the first check, the pool holding %d dead connections",
		time.Since(back).Round(time.Millisecond), pool.Config().MaxConns)
}

// BenchmarkReadyz is the public /readyz handler under parallel load: almost
// every answer comes from the state checked at most once a second.
func BenchmarkReadyz(b *testing.B) {
	pool := testenv.Postgres(b)
	rdb, _ := testenv.Redis(b)
	dd, err := dedup.New(dedup.Config{Pool: pool})
	if err != nil {
		b.Fatal(err)
	}
	v, err := receiver.NewVerifier([]string{"whsec_readiness_bench"}, 5*time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := receiver.New(receiver.Config{Verifier: v, Deduper: dd, Queue: noQueue{}, Pool: pool, Redis: rdb,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	if code, body := readyz(srv); code != 200 {
		b.Fatalf("/readyz: %d %s", code, body)
	}
	checks := srv.ReadinessChecks()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		for pb.Next() {
			ctx.Request.SetRequestURI("/readyz")
			srv.Handle(&ctx)
			if ctx.Response.StatusCode() != 200 {
				b.Errorf("/readyz: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
				return
			}
			ctx.Response.Reset()
		}
	})
	b.ReportMetric(float64(srv.ReadinessChecks()-checks)/b.Elapsed().Seconds(), "checks/s")
}

// TestReadinessNamesARedisThatTimesOut: a Redis that takes the connection
// and never answers runs the ping out of time; the check ends at its
// bound, and the reason still names the address it was for.
func TestReadinessNamesARedisThatTimesOut(t *testing.T) {
	t.Parallel()
	addr := tcpServer(t, func(c net.Conn) { // reads, never answers
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.Copy(io.Discard, c)
	})
	srv, _ := readinessServer(t, testenv.Postgres(t), addr)
	start := time.Now()
	d := srv.ReadinessDetail(context.Background())
	if d.Redis != receiver.StateDown || !strings.Contains(d.RedisError, addr) {
		t.Errorf("Redis %q, error %q; want down, naming %s", d.Redis, d.RedisError, addr)
	}
	// The check is bounded (a second for Redis): the client's own read
	// timeout (3 s) does not hold up every /readyz waiting on it.
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Errorf("the check took %v with Redis not answering", took)
	}
}
