package receiver_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
)

// TestStormAcrossThreeInstances sends every event 8 times at once, spread
// over three instances that share one Redis and one Postgres and remember
// the ids they stored: copies meet every path (in flight here, remembered
// here, awaited in Redis, decided by Postgres) and one is accepted.
func TestStormAcrossThreeInstances(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	out := harness.NewRecordingSink()
	var ins []*harness.Instance
	for range 3 { // each with its own pool, as separate processes have
		ins = append(ins, harness.StartInstance(t, harness.InstanceConfig{Pool: testenv.AnotherPool(t, pool), Redis: rdb, KeyPrefix: prefix,
			RecentIDs: 1000, Sink: out}))
	}

	const events, copies = 300, 8
	var mu sync.Mutex
	accepted, answers := map[string]int{}, 0
	var wg sync.WaitGroup
	for e := range events {
		id := fmt.Sprintf("evt_storm_%03d", e)
		body := harness.EventBody(id, "invoice.paid")
		for c := range copies {
			wg.Go(func() {
				// Like Stripe: a 503 (an instance at its bound) is sent again.
				var resp harness.Response
				eventually.Within(5*time.Second, func() bool {
					resp = harness.Post(t, ins[(e+c)%3].URL, body)
					return resp.Code != 503
				})
				mu.Lock()
				defer mu.Unlock()
				answers++
				switch resp.Body {
				case `{"status":"accepted","event_id":"` + id + `"}`:
					accepted[id]++
				case `{"status":"duplicate","event_id":"` + id + `"}`:
				default:
					t.Errorf("%s: %d %s", id, resp.Code, resp.Body)
				}
			})
		}
	}
	wg.Wait()
	if answers != events*copies || len(accepted) != events {
		t.Fatalf("%d answers, %d ids accepted; want %d and %d", answers, len(accepted), events*copies, events)
	}
	for id, n := range accepted {
		if n != 1 {
			t.Errorf("%s accepted %d times", id, n)
		}
	}
	if n := countRows(t, pool); n != events {
		t.Fatalf("%d rows, want %d", n, events)
	}
	out.WaitFor(t, 10*time.Second, func(c map[string]int) bool { return len(c) == events })
	for id, n := range out.Counts() {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
}

func TestPostgresDownAnswers503(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t)
	pool := testenv.Schema(t, pg.URL())
	rdb, prefix := testenv.Redis(t)
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Redis: rdb, KeyPrefix: prefix, Sink: harness.NewRecordingSink()})

	body := harness.EventBody("evt_pg_down", "charge.succeeded")
	pg.Stop(t)
	for range 3 {
		resp := harness.Post(t, in.URL, body)
		if resp.Code != 503 || !strings.Contains(resp.Body, `"error"`) {
			t.Fatalf("Postgres down: %d %s, want 503", resp.Code, resp.Body)
		}
	}
	if keys := testenv.Keys(t, rdb, prefix); len(keys) != 0 {
		t.Fatalf("Redis keys after 503s: %v", keys)
	}
	pg.Start(t)
	if resp := harness.Post(t, in.URL, body); resp.Body != `{"status":"accepted","event_id":"evt_pg_down"}` {
		t.Fatalf("after restart: %d %s, want accepted", resp.Code, resp.Body)
	}
}

func TestRedisDownStillDeduplicates(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	rs := testenv.StartRedis(t)
	rdb, prefix := testenv.RedisAt(t, rs.URL())
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Redis: rdb, KeyPrefix: prefix, Sink: harness.NewRecordingSink()})

	rs.Stop(t)
	body := harness.EventBody("evt_redis_down", "charge.succeeded")
	for i, want := range []string{"accepted", "duplicate", "duplicate"} {
		resp := harness.Post(t, in.URL, body)
		if resp.Code != 200 || !strings.Contains(resp.Body, `"status":"`+want+`"`) {
			t.Fatalf("delivery %d with Redis down: %d %s, want %s", i, resp.Code, resp.Body, want)
		}
	}
	rs.Start(t)
	// The fast path resumes: a new event leaves a done key in Redis.
	i := 0
	eventually.Require(t, 5*time.Second, "the Redis fast path to resume", func() bool {
		id := fmt.Sprintf("evt_redis_back_%d", i)
		i++
		if resp := harness.Post(t, in.URL, harness.EventBody(id, "charge.succeeded")); resp.Code != 200 {
			t.Fatalf("after Redis restart: %d %s", resp.Code, resp.Body)
		}
		return rdb.Get(context.Background(), prefix+"evt:"+id).Val() == "done"
	})
}

func TestLateRetryAfterRestartWithRedisFlushed(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	body := harness.EventBody("evt_late", "customer.created")

	first := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Redis: rdb, KeyPrefix: prefix, Sink: harness.NewRecordingSink()})
	if resp := harness.Post(t, first.URL, body); resp.Body != `{"status":"accepted","event_id":"evt_late"}` {
		t.Fatalf("first delivery: %d %s", resp.Code, resp.Body)
	}
	first.Stop()
	for k := range testenv.Keys(t, rdb, prefix) {
		rdb.Del(context.Background(), k)
	}
	second := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Redis: rdb, KeyPrefix: prefix, Sink: harness.NewRecordingSink()})
	if resp := harness.Post(t, second.URL, body); resp.Body != `{"status":"duplicate","event_id":"evt_late"}` {
		t.Fatalf("late retry: %d %s, want duplicate", resp.Code, resp.Body)
	}
}
