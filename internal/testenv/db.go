// Package testenv gives tests real Postgres and Redis: an isolated migrated
// schema and a unique Redis key prefix per test on the shared instances
// (TEST_DATABASE_URL, TEST_REDIS_URL, which `make test` starts), and
// private servers that a test may stop and restart to inject faults.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/oncehook/oncehook/migrations"
)

const notSet = " is not set: run `make test`, which starts throwaway Postgres and Redis, " +
	"or point TEST_DATABASE_URL and TEST_REDIS_URL at existing ones"

// DatabaseURL is TEST_DATABASE_URL; the test fails when it is not set.
func DatabaseURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("TEST_DATABASE_URL")
	if u == "" {
		t.Fatal("TEST_DATABASE_URL" + notSet)
	}
	return u
}

// RedisURL is TEST_REDIS_URL; the test fails when it is not set.
func RedisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("TEST_REDIS_URL")
	if u == "" {
		t.Fatal("TEST_REDIS_URL" + notSet)
	}
	return u
}

// Postgres returns a pool on a fresh migrated schema of TEST_DATABASE_URL,
// dropped when the test ends.
func Postgres(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return Schema(t, DatabaseURL(t))
}

// Schema creates a migrated schema in the database at url and returns a
// pool whose search_path is that schema.
func Schema(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool := EmptySchema(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := migrations.Apply(ctx, pool); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	return pool
}

// EmptySchema creates a schema without the migrations in the database at
// url and returns a pool whose search_path is that schema.
func EmptySchema(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := "t_" + RandomHex(6)
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connecting to test Postgres: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatalf("creating schema: %v", err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = name
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, url); err == nil {
			_, _ = c.Exec(ctx, "DROP SCHEMA "+name+" CASCADE")
			_ = c.Close(ctx)
		}
	})
	return pool
}

// AnotherPool opens a second pool on the same database and schema as pool,
// as another instance would; it is closed when the test ends.
func AnotherPool(t testing.TB, pool *pgxpool.Pool) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.NewWithConfig(context.Background(), pool.Config().Copy())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// Redis returns a client of TEST_REDIS_URL and a key prefix of this test's
// own; the test's keys are deleted when it ends.
func Redis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	return RedisAt(t, RedisURL(t))
}

// RedisAt is Redis for the server at url.
func RedisAt(t testing.TB, url string) (*redis.Client, string) {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = -1 // fault tests count on a failure being seen
	rdb := redis.NewClient(opt)
	prefix := "test:" + RandomHex(6) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		if keys, err := rdb.Keys(ctx, prefix+"*").Result(); err == nil && len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
		_ = rdb.Close()
	})
	return rdb, prefix
}

// Keys returns the keys under prefix.
func Keys(t testing.TB, rdb redis.UniversalClient, prefix string) map[string]string {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatalf("listing redis keys: %v", err)
	}
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		out[k] = rdb.Get(ctx, k).Val()
	}
	return out
}

// RandomHex returns 2n random hex digits.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
