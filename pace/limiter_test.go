package pace

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oncehook/oncehook/internal/testenv"
)

var perSecond100 = Rate{Count: 100, Per: time.Second}

// slots reserves n slots, taking turns between the limiters, and returns
// when each is due by the local clock, in order.
func slots(t *testing.T, n int, ls ...*Limiter) []time.Time {
	t.Helper()
	var out []time.Time
	for i := range n {
		now := time.Now()
		wait, ok := ls[i%len(ls)].Reserve(context.Background(), time.Minute)
		if !ok {
			t.Fatalf("reservation %d refused within a minute", i)
		}
		out = append(out, now.Add(wait))
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// requireSpacing fails unless consecutive slots are at least interval
// apart, less tolerance: a slot is read as the local time before the call
// plus the wait, and the call's own time varies (more so over Redis).
func requireSpacing(t *testing.T, got []time.Time, interval, tolerance time.Duration) {
	t.Helper()
	for i := 1; i < len(got); i++ {
		if gap := got[i].Sub(got[i-1]); gap < interval-tolerance {
			t.Fatalf("slots %d and %d are %s apart, want at least %s", i-1, i, gap, interval)
		}
	}
	if span, want := got[len(got)-1].Sub(got[0]), time.Duration(len(got)-1)*interval; span < want-tolerance {
		t.Fatalf("%d slots span %s, want at least %s", len(got), span, want)
	}
}

func TestInstancesShareOneScheduleInRedis(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	a, err := New(Config{Destination: "billing", Rate: perSecond100, Redis: rdb, KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := New(Config{Destination: "billing", Rate: perSecond100, Redis: rdb, KeyPrefix: prefix})
	other, _ := New(Config{Destination: "crm", Rate: perSecond100, Redis: rdb, KeyPrefix: prefix})

	// Two instances, one schedule: 300 slots 10ms apart, 3s in all. By
	// the local clock, roughly (a round trip to Redis varies by some ms);
	// by Redis's, exactly: the first slot was Redis's now, and the
	// schedule's next free slot is 300 intervals on.
	ctx := context.Background()
	before, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	requireSpacing(t, slots(t, 300, a, b), 10*time.Millisecond, 8*time.Millisecond)
	free, err := rdb.Get(ctx, scheduleKey(prefix, "billing")).Int64()
	if err != nil {
		t.Fatal(err)
	}
	first := time.UnixMicro(free - 300*10_000)
	if first.Before(before) || first.After(time.Now().Add(time.Second)) {
		t.Fatalf("the schedule's next free slot is %s; want 300 intervals after the first slot, taken at %s",
			time.UnixMicro(free).Format(time.StampMicro), before.Format(time.StampMicro))
	}

	// Another destination has a schedule of its own: its first slot is now.
	if wait, ok := other.Reserve(context.Background(), 0); !ok || wait != 0 {
		t.Fatalf("another destination's first slot: wait %s, reserved %v; want now", wait, ok)
	}

	// One key per destination, each expiring.
	for _, dest := range []string{"billing", "crm"} {
		key := scheduleKey(prefix, dest)
		if key != prefix+"rate:"+dest {
			t.Fatalf("key %q, want %q", key, prefix+"rate:"+dest)
		}
		ttl, err := rdb.PTTL(ctx, key).Result()
		if err != nil || ttl <= 0 || ttl > 5*time.Second {
			t.Fatalf("%s's TTL is %s (%v); want one a little past its last slot", key, ttl, err)
		}
	}
	if keys := testenv.Keys(t, rdb, prefix); len(keys) != 2 {
		t.Fatalf("keys %v, want one per destination", keys)
	}
}

func TestAReservationPastTheLongestWaitTakesNothing(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	l, err := New(Config{Destination: "billing", Rate: Rate{Count: 10, Per: time.Second}, Redis: rdb, KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 5 { // slots now, +100ms, ... +400ms
		if _, ok := l.Reserve(ctx, time.Second); !ok {
			t.Fatal("a slot within a second was refused")
		}
	}
	wait, ok := l.Reserve(ctx, 200*time.Millisecond)
	if ok || wait < 300*time.Millisecond {
		t.Fatalf("the sixth slot, ~500ms away, with a 200ms longest wait: reserved %v, wait %s; want refused", ok, wait)
	}
	// The refusal took no slot: the next is still the sixth, not the seventh.
	wait, ok = l.Reserve(ctx, time.Second)
	if !ok || wait > 500*time.Millisecond || wait < 400*time.Millisecond {
		t.Fatalf("after a refusal: reserved %v, wait %s; want the slot ~500ms away", ok, wait)
	}
}

func TestWithoutRedisEachInstanceTakesItsShare(t *testing.T) {
	t.Parallel()
	var counts atomic.Int32
	l, err := New(Config{Destination: "billing", Rate: perSecond100,
		Instances: func(context.Context) (int, error) { counts.Add(1); return 2, nil }})
	if err != nil {
		t.Fatal(err)
	}
	// Two instances at 100/s: this one takes one slot every 20ms.
	requireSpacing(t, slots(t, 100, l), 20*time.Millisecond, time.Millisecond)
	if n := counts.Load(); n != 1 {
		t.Fatalf("the instances were counted %d times for 100 slots within InstancesEvery; want once", n)
	}
}

func TestAFailingRedisLeavesTheScheduleToEachInstance(t *testing.T) {
	t.Parallel()
	// A Redis that refuses connections: nothing listens on the address.
	dead := redis.NewClient(&redis.Options{Addr: testenv.FreeAddr(t), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = dead.Close() })
	l, err := New(Config{Destination: "billing", Rate: perSecond100, Redis: dead, KeyPrefix: "test:",
		Instances: func(context.Context) (int, error) { return 3, nil }})
	if err != nil {
		t.Fatal(err)
	}
	requireSpacing(t, slots(t, 50, l), 30*time.Millisecond, time.Millisecond)
}

func TestConfigErrorsNameTheProblem(t *testing.T) {
	t.Parallel()
	rdb, _ := testenv.Redis(t)
	for _, c := range []Config{
		{Rate: perSecond100},
		{Destination: "billing"},
		{Destination: "billing", Rate: perSecond100, Redis: rdb},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted a bad config", c)
		}
	}
}
