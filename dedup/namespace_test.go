package dedup_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/store"
)

// TestTwoDeploymentsSharingRedisKeepTheirOwnEvents: two deployments with
// separate databases and one Redis (one Stripe account, two endpoints, two
// applications) each store and accept the same event; neither takes the
// other's "done" key for its own.
func TestTwoDeploymentsSharingRedisKeepTheirOwnEvents(t *testing.T) {
	t.Parallel()
	rdb, _ := testenv.Redis(t)
	poolA, poolB := testenv.Postgres(t), testenv.Postgres(t)
	a := newDeduper(t, poolA, rdb, "") // the default prefix
	b := newDeduper(t, poolB, rdb, "")
	id := "evt_shared_redis_" + testenv.RandomHex(6)
	if res := check(t, a, id); res.Outcome != dedup.Accepted {
		t.Fatalf("deployment A: %+v, want accepted", res)
	}
	// A's "done" is written without waiting: let it land, so that B would
	// find it if the two shared keys.
	eventually.Require(t, 5*time.Second, "deployment A's done key to land", func() bool { return hasDoneKey(t, rdb, id) })
	if res := check(t, b, id); res.Outcome != dedup.Accepted {
		t.Fatalf("deployment B: %+v, want accepted: its database has never seen %s", res, id)
	}
	if n := rowCount(t, poolB, id); n != 1 {
		t.Fatalf("deployment B stored %d rows of %s, want 1", n, id)
	}

	nsA, err := store.New(poolA).Namespace(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	nsB, err := store.New(poolB).Namespace(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if nsA == nsB || len(nsA) < 16 {
		t.Fatalf("namespaces %q and %q: want two distinct random values", nsA, nsB)
	}
	for _, ns := range []string{nsA, nsB} {
		keys := testenv.Keys(t, rdb, dedup.KeyPrefixFor(ns))
		if len(keys) != 1 {
			t.Errorf("namespace %s holds keys %v, want the one event", ns, keys)
		}
		for k := range keys {
			if !strings.HasSuffix(k, id) {
				t.Errorf("unexpected key %s", k)
			}
			_ = rdb.Del(context.Background(), k)
		}
	}
}

// hasDoneKey reports whether some key of any prefix marks id done.
func hasDoneKey(t *testing.T, rdb redis.UniversalClient, id string) bool {
	for _, v := range testenv.Keys(t, rdb, "oncehook:*evt:"+id) {
		if v == "done" {
			return true
		}
	}
	return false
}

// TestInstancesOfOneDeploymentShareTheNamespace: two instances on one
// database derive the same key prefix, so one's "done" spares the other a
// trip to Postgres.
func TestInstancesOfOneDeploymentShareTheNamespace(t *testing.T) {
	t.Parallel()
	rdb, _ := testenv.Redis(t)
	pool := testenv.Postgres(t)
	a, b := newDeduper(t, pool, rdb, ""), newDeduper(t, testenv.AnotherPool(t, pool), rdb, "")
	id := "evt_one_deployment_" + testenv.RandomHex(6)
	if res := check(t, a, id); res.Outcome != dedup.Accepted {
		t.Fatalf("instance A: %+v, want accepted", res)
	}
	eventually.Require(t, 5*time.Second, "instance A's done key to land", func() bool { return hasDoneKey(t, rdb, id) })
	if res := check(t, b, id); res.Outcome != dedup.Duplicate || res.Path != dedup.PathRedisDone {
		t.Fatalf("instance B: %+v, want a duplicate decided by Redis", res)
	}
	for k := range testenv.Keys(t, rdb, "oncehook:*evt:"+id) {
		_ = rdb.Del(context.Background(), k)
	}
}
