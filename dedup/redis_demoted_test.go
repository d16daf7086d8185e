package dedup_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
)

// TestPlainURLToDemotedMaster: REDIS_URL=redis:// names a master that is
// then made a replica (as Sentinel does to an old master that comes back):
// its writes fail with READONLY, Postgres decides alone, and the log says
// why. That lasts while the server is a replica (which is why a plain URL
// to a failed-over master "falls back for good"), not longer: once it is
// a master again, the fast path resumes.
func TestPlainURLToDemotedMaster(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	a, b := testenv.StartRedis(t), testenv.StartRedis(t)
	rdb, err := dedup.NewRedisClient(a.URL(), 250*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	prefix := "test:" + testenv.RandomHex(6) + ":"
	logs := new(harness.Buffer)
	d := newDeduper(t, pool, rdb, prefix, func(c *dedup.Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	admin := func(s *testenv.RedisServer) *redis.Client {
		opt, err := redis.ParseURL(s.URL())
		if err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(opt)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	ca, bu := admin(a), b.URL()
	ctx := context.Background()
	n := 0
	next := func() dedup.Result {
		n++
		return check(t, d, fmt.Sprintf("evt_demoted_%d", n))
	}
	if res := next(); res.Path != dedup.PathPostgres {
		t.Fatalf("with a master: %+v, want a Redis claim", res)
	}

	u, _ := url.Parse(bu)
	if err := ca.SlaveOf(ctx, u.Hostname(), u.Port()).Err(); err != nil {
		t.Fatal(err)
	}
	var res dedup.Result
	eventually.Require(t, 5*time.Second, "decisions to fall back on a replica", func() bool {
		res = next()
		return res.Path == dedup.PathRedisFallback
	}, func() string { return fmt.Sprintf("last %+v", res) })
	if log := logs.String(); !strings.Contains(log, "READONLY") || !strings.Contains(log, "redis+sentinel://") {
		t.Errorf("the log does not say that REDIS_URL names a replica:\n%s", log)
	}

	start := time.Now()
	if err := ca.SlaveOf(ctx, "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	eventually.Require(t, 10*time.Second, "the fast path to resume on the master again", func() bool {
		res = next()
		return res.Path == dedup.PathPostgres
	}, func() string { return fmt.Sprintf("last %+v", res) })
	t.Logf("fast path back %v after REPLICAOF NO ONE, %d events", time.Since(start).Round(time.Millisecond), n)
}
