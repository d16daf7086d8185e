package receiver_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/oncehook/oncehook/dedup"
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
