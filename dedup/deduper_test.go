package dedup_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/testenv"
)

// newDeduper starts a Deduper for the test; tune, if given, adjusts its
// config first.
func newDeduper(t *testing.T, pool *pgxpool.Pool, rdb redis.UniversalClient, prefix string, tune ...func(*dedup.Config)) *dedup.Deduper {
	t.Helper()
	cfg := dedup.Config{Pool: pool, Redis: rdb, KeyPrefix: prefix, RedisBackoff: 50 * time.Millisecond, CommitTimeout: 2 * time.Second}
	for _, f := range tune {
		f(&cfg)
	}
	d, err := dedup.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	return d
}

func testEvent(id string) *event.Event {
	return &event.Event{ID: id, Type: "invoice.paid", Created: time.Unix(1_700_000_000, 0), Account: "acct_1", APIVersion: "2025-08-27.basil",
		Payload: []byte(`{"id":"` + id + `","object":"event","type":"invoice.paid"}`)}
}

func rowCount(t *testing.T, pool *pgxpool.Pool, id string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM stripe_webhook_events WHERE event_id = $1", id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func check(t *testing.T, d *dedup.Deduper, id string) dedup.Result {
	t.Helper()
	res, err := d.StoreOnce(context.Background(), testEvent(id))
	if err != nil {
		t.Fatalf("StoreOnce(%s): %v", id, err)
	}
	return res
}

func TestConcurrentDeliveriesOneAccepted(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	d := newDeduper(t, pool, rdb, prefix)

	var wg sync.WaitGroup
	results := make(chan dedup.Result, 50)
	for range 50 {
		wg.Go(func() {
			res, err := d.StoreOnce(context.Background(), testEvent("evt_concurrent"))
			if err != nil {
				t.Error(err)
				return
			}
			results <- res
		})
	}
	wg.Wait()
	close(results)
	accepted := 0
	for r := range results {
		if r.Outcome == dedup.Accepted {
			accepted++
		}
	}
	if accepted != 1 {
		t.Fatalf("accepted %d times, want 1", accepted)
	}
	if n := rowCount(t, pool, "evt_concurrent"); n != 1 {
		t.Fatalf("%d rows, want 1", n)
	}
}

func TestStoredRowHoldsTheEvent(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	d := newDeduper(t, pool, nil, "")
	ev := testEvent("evt_fields")
	if res, err := d.StoreOnce(context.Background(), ev); err != nil || res.Outcome != dedup.Accepted || res.Path != dedup.PathPostgresOnly {
		t.Fatalf("StoreOnce: %+v, %v", res, err)
	}
	var (
		typ, account, version, status string
		created                       time.Time
		payload                       []byte
		lockedFuture                  bool
	)
	err := pool.QueryRow(context.Background(), `SELECT event_type, account, api_version, stripe_created, payload, d.status, d.locked_until > now()
		FROM stripe_webhook_events e JOIN stripe_webhook_deliveries d USING (event_id)
		WHERE event_id = 'evt_fields' AND d.destination = 'default' AND e.status = 'routed'`).Scan(&typ, &account, &version, &created, &payload, &status, &lockedFuture)
	if err != nil {
		t.Fatal(err)
	}
	if typ != ev.Type || account != ev.Account || version != ev.APIVersion || !created.Equal(ev.Created) || string(payload) != string(ev.Payload) || status != "pending" || !lockedFuture {
		t.Fatalf("row = %q %q %q %v %q %q locked=%v", typ, account, version, created, payload, status, lockedFuture)
	}
	if res := check(t, d, "evt_fields"); res.Outcome != dedup.Duplicate {
		t.Fatalf("second StoreOnce: %+v, want duplicate", res)
	}
}

func TestRedisDoneAnswersWithoutPostgres(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	d := newDeduper(t, pool, rdb, prefix)

	if res := check(t, d, "evt_fast"); res.Outcome != dedup.Accepted || res.Path != dedup.PathPostgres {
		t.Fatalf("first: %+v", res)
	}
	// "done" is written without holding up the answer: wait for it.
	eventually.Require(t, 5*time.Second, "a done key", func() bool { return rdb.Get(context.Background(), prefix+"evt:evt_fast").Val() == "done" },
		func() string { return fmt.Sprintf("redis keys = %v", testenv.Keys(t, rdb, prefix)) })
	if keys := testenv.Keys(t, rdb, prefix); len(keys) != 1 {
		t.Fatalf("redis keys = %v, want one", keys)
	}
	ttl := rdb.TTL(context.Background(), prefix+"evt:evt_fast").Val()
	if ttl < 71*time.Hour || ttl > 72*time.Hour {
		t.Fatalf("done key TTL %s, want about 72h", ttl)
	}
	before := d.Stats()
	if res := check(t, d, "evt_fast"); res.Outcome != dedup.Duplicate || res.Path != dedup.PathRedisDone {
		t.Fatalf("second: %+v", res)
	}
	if after := d.Stats(); after.Rows != before.Rows {
		t.Fatalf("a Redis hit reached Postgres: %+v -> %+v", before, after)
	}
}

func TestClaimHeldElsewhereGoesToPostgres(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	d := newDeduper(t, pool, rdb, prefix)
	// Another instance claimed the event and then died before inserting.
	rdb.Set(context.Background(), prefix+"evt:evt_orphan", "pending:deadbeef", time.Minute)
	if res := check(t, d, "evt_orphan"); res.Outcome != dedup.Accepted || res.Path != dedup.PathPostgres {
		t.Fatalf("StoreOnce: %+v, want accepted through Postgres", res)
	}
}

func TestGroupCommit(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	d := newDeduper(t, pool, nil, "")
	const n = 400
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for i := range n {
		wg.Go(func() {
			res, err := d.StoreOnce(context.Background(), testEvent(fmt.Sprintf("evt_group_%d", i)))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if res.Outcome == dedup.Accepted {
				accepted++
			}
		})
	}
	wg.Wait()
	st := d.Stats()
	if accepted != n || st.Rows != n {
		t.Fatalf("accepted %d, rows sent %d, want %d", accepted, st.Rows, n)
	}
	if st.Batches >= n/2 {
		t.Fatalf("%d statements for %d concurrent inserts: not group-committed", st.Batches, n)
	}
	t.Logf("%d inserts in %d statements", n, st.Batches)
}

func TestOverlappingBatchesFromInstances(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	// Three instances (no Redis) insert the same 100 ids in different orders.
	var ds []*dedup.Deduper
	for range 3 {
		ds = append(ds, newDeduper(t, pool, nil, ""))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := map[string]int{}
	for k, d := range ds {
		for i := range 100 {
			id := fmt.Sprintf("evt_overlap_%03d", (i*7+k*31)%100)
			wg.Go(func() {
				res, err := d.StoreOnce(context.Background(), testEvent(id))
				if err != nil {
					t.Error(err)
					return
				}
				if res.Outcome == dedup.Accepted {
					mu.Lock()
					accepted[id]++
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if len(accepted) != 100 {
		t.Fatalf("%d ids accepted, want 100", len(accepted))
	}
	for id, n := range accepted {
		if n != 1 {
			t.Errorf("%s accepted %d times", id, n)
		}
	}
}

func TestPostgresDownAnswersUnavailableAndReleasesClaim(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t)
	pool := testenv.Schema(t, pg.URL())
	rdb, prefix := testenv.Redis(t)
	d := newDeduper(t, pool, rdb, prefix)

	pg.Stop(t)
	for range 3 {
		_, err := d.StoreOnce(context.Background(), testEvent("evt_pgdown"))
		if !errors.Is(err, dedup.ErrUnavailable) {
			t.Fatalf("StoreOnce with Postgres down: %v, want ErrUnavailable", err)
		}
	}
	if keys := testenv.Keys(t, rdb, prefix); len(keys) != 0 {
		t.Fatalf("redis keys left after failed inserts: %v", keys)
	}
	pg.Start(t)
	if res := check(t, d, "evt_pgdown"); res.Outcome != dedup.Accepted {
		t.Fatalf("after restart: %+v, want accepted", res)
	}
}

func TestRedisDownFallsBackToPostgres(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	rs := testenv.StartRedis(t)
	rdb, prefix := testenv.RedisAt(t, rs.URL())
	d := newDeduper(t, pool, rdb, prefix)

	rs.Stop(t)
	if res := check(t, d, "evt_rdown"); res.Outcome != dedup.Accepted {
		t.Fatalf("first with Redis down: %+v", res)
	}
	if res := check(t, d, "evt_rdown"); res.Outcome != dedup.Duplicate || res.Path != dedup.PathRedisFallback {
		t.Fatalf("second with Redis down: %+v, want duplicate by fallback", res)
	}
	rs.Start(t)
	start := time.Now()
	eventually.Require(t, 5*time.Second, "the fast path to resume after Redis came back", func() bool {
		res := check(t, d, "evt_rdown")
		if res.Outcome != dedup.Duplicate {
			t.Fatalf("after Redis restart: %+v", res)
		}
		return res.Path == dedup.PathPostgres // Redis answered again
	})
	// The "done" written after that answer lands: then Redis answers alone.
	var res dedup.Result
	eventually.Require(t, 5*time.Second-time.Since(start), "a Redis hit after the resume", func() bool {
		res = check(t, d, "evt_rdown")
		return res.Outcome == dedup.Duplicate && res.Path == dedup.PathRedisDone
	}, func() string { return fmt.Sprintf("last answer %+v", res) })
}

func TestCheckAfterStopIsUnavailable(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	d := newDeduper(t, pool, rdb, prefix)
	_ = d.Stop(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := d.StoreOnce(context.Background(), testEvent("evt_after_stop"))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, dedup.ErrUnavailable) {
			t.Fatalf("StoreOnce after Stop: %v, want ErrUnavailable", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("StoreOnce after Stop hangs")
	}
	if keys := testenv.Keys(t, rdb, prefix); len(keys) != 0 {
		t.Fatalf("claim left behind: %v", keys)
	}
}

func TestAcceptedResultCarriesLeaseStart(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	d := newDeduper(t, pool, nil, "")
	before := time.Now()
	res := check(t, d, "evt_lease")
	if res.Outcome != dedup.Accepted || res.Lease.Start.Before(before) || res.Lease.Start.After(time.Now()) {
		t.Fatalf("Result %+v: Lease.Start must be taken during StoreOnce", res)
	}
	// The row's lease ends no earlier than LeasedAt + Lease (1m by default).
	var leaseEnd time.Time
	if err := pool.QueryRow(context.Background(), "SELECT locked_until FROM stripe_webhook_deliveries WHERE event_id = 'evt_lease'").Scan(&leaseEnd); err != nil {
		t.Fatal(err)
	}
	if leaseEnd.Before(res.Lease.Start.Add(time.Minute - 50*time.Millisecond)) { // clock skew allowance with the local Postgres
		t.Fatalf("lease ends %v, before Lease.Start+1m %v", leaseEnd, res.Lease.Start.Add(time.Minute))
	}
	if !res.Lease.Until.Equal(leaseEnd) || res.Lease.Length != time.Minute {
		t.Fatalf("Lease.Until %v is not the stored locked_until %v", res.Lease.Until, leaseEnd)
	}
}

// TestRedisCluster: the fast path against a three-node Redis Cluster, with
// each event's key on whichever node owns its slot and pipelines spanning
// nodes.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	rdb, err := dedup.NewRedisClient(testenv.StartRedisCluster(t), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		t.Fatalf("NewRedisClient gave %T for a cluster URL", rdb)
	}
	d := newDeduper(t, pool, rdb, "oncehook:")
	const events, copies = 100, 4
	var mu sync.Mutex
	accepted := map[string]int{}
	var wg sync.WaitGroup
	for e := range events {
		for range copies {
			wg.Go(func() {
				id := fmt.Sprintf("evt_cluster_%03d", e)
				res, err := d.StoreOnce(context.Background(), testEvent(id))
				if err != nil {
					t.Error(err)
					return
				}
				if res.Path == dedup.PathRedisFallback {
					t.Errorf("%s fell back to Postgres: Redis Cluster failed", id)
				}
				if res.Outcome == dedup.Accepted {
					mu.Lock()
					accepted[id]++
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if len(accepted) != events {
		t.Fatalf("%d events accepted, want %d", len(accepted), events)
	}
	for id, n := range accepted {
		if n != 1 {
			t.Errorf("%s accepted %d times", id, n)
		}
	}
	// Late duplicates are answered by the cluster alone, on every node.
	e := 0
	var res dedup.Result
	eventually.Require(t, 5*time.Second, "every late duplicate answered by a Redis hit", func() bool {
		for ; e < events; e++ {
			if res = check(t, d, fmt.Sprintf("evt_cluster_%03d", e)); res.Path != dedup.PathRedisDone {
				return false
			}
		}
		return true
	}, func() string { return fmt.Sprintf("evt_cluster_%03d: %+v", e, res) })
	cc := rdb.(*redis.ClusterClient)
	nodesWithKeys := 0
	err = cc.ForEachMaster(context.Background(), func(ctx context.Context, c *redis.Client) error {
		if n, err := c.DBSize(ctx).Result(); err == nil && n > 0 {
			mu.Lock()
			nodesWithKeys++
			mu.Unlock()
		}
		return nil
	})
	if err != nil || nodesWithKeys != 3 {
		t.Fatalf("keys on %d of 3 nodes (%v): the test did not spread over the cluster", nodesWithKeys, err)
	}
}

func TestRecentIDsAnswerWithoutRedisOrPostgres(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	d := newDeduper(t, pool, rdb, prefix, func(c *dedup.Config) { c.RecentIDs = 100 })
	if res := check(t, d, "evt_recent"); res.Outcome != dedup.Accepted {
		t.Fatalf("first: %+v", res)
	}
	// With the Redis key gone, only the process's memory can answer
	// without Postgres.
	rdb.Del(context.Background(), prefix+"evt:evt_recent")
	before := d.Stats()
	if res := check(t, d, "evt_recent"); res.Outcome != dedup.Duplicate || res.Path != dedup.PathRecent {
		t.Fatalf("second: %+v, want a duplicate from memory", res)
	}
	if after := d.Stats(); after.Rows != before.Rows {
		t.Fatalf("a remembered id reached Postgres: %+v -> %+v", before, after)
	}
	// A duplicate decided by Postgres is not remembered: its row's age,
	// and so how long Redis keeps its key, is unknown here. Asked again,
	// another process goes to Redis or Postgres, never to its memory.
	other := newDeduper(t, pool, rdb, prefix, func(c *dedup.Config) { c.RecentIDs = 100 })
	for i := range 2 {
		rdb.Del(context.Background(), prefix+"evt:evt_recent")
		res := check(t, other, "evt_recent")
		if res.Outcome != dedup.Duplicate || res.Path == dedup.PathRecent || (i == 0 && res.Path != dedup.PathPostgres) {
			t.Fatalf("another process, check %d: %+v, want a duplicate from Postgres (or Redis), not from memory", i+1, res)
		}
	}
}

func TestClaimHeldElsewhereAwaitsItsDone(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	d := newDeduper(t, pool, rdb, prefix)
	// Another instance holds the claim, then commits and marks it done
	// while this delivery waits. Under load the claim may come after the
	// "done": then try another id.
	before := d.Stats()
	awaited := false
	for i := 0; i < 5 && !awaited; i++ {
		id := fmt.Sprintf("evt_held_%d", i)
		key := prefix + "evt:" + id
		rdb.Set(context.Background(), key, "pending:0123abcd", time.Minute)
		go func() {
			// Intended fault window: the other instance commits 20ms
			// later, while this StoreOnce is waiting on its claim.
			time.Sleep(20 * time.Millisecond)
			rdb.Set(context.Background(), key, "done", time.Hour)
		}()
		res := check(t, d, id)
		if res.Outcome != dedup.Duplicate || (res.Path != dedup.PathRedisAwait && res.Path != dedup.PathRedisDone) {
			t.Fatalf("StoreOnce(%s): %+v, want a duplicate from Redis", id, res)
		}
		awaited = res.Path == dedup.PathRedisAwait
	}
	if !awaited {
		t.Fatal("no StoreOnce waited for the other instance's done")
	}
	if after := d.Stats(); after.Rows != before.Rows {
		t.Fatalf("the wait reached Postgres: %+v -> %+v", before, after)
	}
	// The claim is released (the other insert failed): Postgres decides.
	rdb.Set(context.Background(), prefix+"evt:evt_released", "pending:0123abcd", time.Minute)
	go func() {
		// Intended fault window: the other instance's insert fails and
		// its claim goes 3ms later, while this StoreOnce is waiting on it.
		time.Sleep(3 * time.Millisecond)
		rdb.Del(context.Background(), prefix+"evt:evt_released")
	}()
	if res := check(t, d, "evt_released"); res.Outcome != dedup.Accepted || res.Path != dedup.PathPostgres {
		t.Fatalf("released claim: %+v, want accepted through Postgres", res)
	}
	if n := rowCount(t, pool, "evt_released"); n != 1 {
		t.Fatalf("%d rows for evt_released", n)
	}
}
