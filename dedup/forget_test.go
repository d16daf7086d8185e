package dedup_test

import (
	"context"
	"testing"
	"time"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/testenv"
)

// TestForgetStopsTrustingRedisAndMemory: after a Postgres failover the
// deduper forgets. An event whose row the promoted server lacks (deleted
// here) while Redis says "done" and memory remembers it is accepted
// again; its "done" key goes under the new epoch, where the next copy
// finds it; an event whose row is kept is a duplicate decided by
// Postgres, not by the old key nor by memory.
func TestForgetStopsTrustingRedisAndMemory(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	d := newDeduper(t, pool, rdb, prefix, func(c *dedup.Config) { c.RecentIDs = 100 })
	ctx := context.Background()
	for _, id := range []string{"evt_fg_lost", "evt_fg_kept"} {
		if res := check(t, d, id); res.Outcome != dedup.Accepted {
			t.Fatalf("%s first: %+v", id, res)
		}
		eventually.Require(t, 5*time.Second, "a done key for "+id, func() bool { return rdb.Get(ctx, prefix+"evt:"+id).Val() == "done" })
	}
	if _, err := pool.Exec(ctx, `DELETE FROM stripe_webhook_events WHERE event_id = 'evt_fg_lost'`); err != nil {
		t.Fatal(err)
	}
	if res := check(t, d, "evt_fg_lost"); res.Outcome != dedup.Duplicate || res.Path != dedup.PathRecent {
		t.Fatalf("before Forget: %+v; the premise is a duplicate from memory", res)
	}

	d.Forget("t2:")

	if res := check(t, d, "evt_fg_lost"); res.Outcome != dedup.Accepted || res.Path != dedup.PathPostgres {
		t.Fatalf("a lost event after Forget: %+v, want accepted by Postgres", res)
	}
	if res := check(t, d, "evt_fg_kept"); res.Outcome != dedup.Duplicate || res.Path != dedup.PathPostgres {
		t.Fatalf("a kept event after Forget: %+v, want a duplicate decided by Postgres", res)
	}
	eventually.Require(t, 5*time.Second, "done keys under the new epoch", func() bool {
		return rdb.Get(ctx, prefix+"t2:evt:evt_fg_lost").Val() == "done" && rdb.Get(ctx, prefix+"t2:evt:evt_fg_kept").Val() == "done"
	})
	other := newDeduper(t, pool, rdb, prefix)
	other.Forget("t2:")
	if res := check(t, other, "evt_fg_kept"); res.Outcome != dedup.Duplicate || res.Path != dedup.PathRedisDone {
		t.Fatalf("another instance on the same epoch: %+v, want a duplicate from Redis", res)
	}
}
