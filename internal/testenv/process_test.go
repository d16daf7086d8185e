package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

func pingPostgres(t *testing.T, url string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var n int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&n)
}

func pingRedis(t *testing.T, url string) error {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = -1 // report the first failure instead of retrying
	opt.DialerRetries = 1
	opt.DialTimeout = 2 * time.Second
	client := redis.NewClient(opt)
	defer client.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	return client.Ping(ctx).Err()
}

func TestPostgresServerStopStart(t *testing.T) {
	t.Parallel()
	start := time.Now()
	s := StartPostgres(t)
	t.Logf("StartPostgres took %v", time.Since(start))

	if err := pingPostgres(t, s.URL()); err != nil {
		t.Fatalf("after StartPostgres: %v", err)
	}
	s.Stop(t)
	if err := pingPostgres(t, s.URL()); err == nil {
		t.Fatal("after Stop: SELECT 1 succeeded, want an error")
	}
	start = time.Now()
	s.Start(t)
	t.Logf("restart took %v", time.Since(start))
	if err := pingPostgres(t, s.URL()); err != nil {
		t.Fatalf("after Start: %v", err)
	}
}

func TestRedisServerStopStart(t *testing.T) {
	t.Parallel()
	s := StartRedis(t)

	if err := pingRedis(t, s.URL()); err != nil {
		t.Fatalf("after StartRedis: %v", err)
	}
	s.Stop(t)
	if err := pingRedis(t, s.URL()); err == nil {
		t.Fatal("after Stop: PING succeeded, want an error")
	}
	s.Start(t)
	if err := pingRedis(t, s.URL()); err != nil {
		t.Fatalf("after Start: %v", err)
	}
}
