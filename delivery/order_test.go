package delivery_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
)

// call is one Deliver: its event, key, span and outcome.
type call struct {
	id, key    string
	start, end time.Time
	ok         bool
}

// orderSink records every call. It fails the first attempt of a third of
// the events, and every attempt of the events of key stuck while stuck is
// set.
type orderSink struct {
	mu       sync.Mutex
	calls    []call
	attempts map[string]int
	stuck    string
	blocked  atomic.Bool
}

func (s *orderSink) Deliver(ctx context.Context, ev *event.Event) error {
	start := time.Now()
	h := fnv.New32a()
	h.Write([]byte(ev.ID))
	s.mu.Lock()
	s.attempts[ev.ID]++
	fail := (s.attempts[ev.ID] == 1 && h.Sum32()%3 == 0) || (ev.OrderKey == s.stuck && s.blocked.Load())
	s.mu.Unlock()
	select { // a call takes a while, so that overlapping calls would show
	case <-time.After(2 * time.Millisecond):
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	s.calls = append(s.calls, call{id: ev.ID, key: ev.OrderKey, start: start, end: time.Now(), ok: !fail})
	s.mu.Unlock()
	if fail {
		return harness.ErrSinkDown
	}
	return nil
}

func (s *orderSink) Close() error { return nil }

func (s *orderSink) snapshot() []call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// orderedBody is a snapshot event of object key, created at created.
func orderedBody(id, key string, created time.Time) []byte {
	return fmt.Appendf(nil, `{"id":%q,"object":"event","api_version":"2025-08-27.basil","created":%d,
		"data":{"object":{"id":%q,"object":"subscription","status":"active"}},"livemode":false,"pending_webhooks":1,
		"request":{"id":null,"idempotency_key":null},"type":"customer.subscription.updated"}`, id, created.Unix(), key)
}

// TestOrderKeyAcrossInstances: three instances share Postgres and one
// ordered destination (ORDER_KEY data.object.id). Each key's events are
// sent in created order, interleaved with the other keys' and spread over
// the instances; the sink fails a third of first attempts, and every
// attempt of one key for a while. Per key, the successful deliveries are
// in created order and no two calls overlap; the failing key holds back
// no other; unkeyed events go too.
func TestOrderKeyAcrossInstances(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	path, err := event.ParseKeyPath("data.object.id")
	if err != nil {
		t.Fatal(err)
	}
	const stuck = "sub_stuck"
	out := &orderSink{attempts: map[string]int{}, stuck: stuck}
	out.blocked.Store(true)
	cfg := fastRetries
	cfg.MaxAttempts = delivery.MaxAttemptsLimit
	cfg.Destinations = []delivery.Destination{{Name: "ordered", Sink: out, OrderKey: path}}
	var urls []string
	for range 3 {
		urls = append(urls, harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Delivery: cfg}).URL)
	}
	const keys, perKey = 8, 8
	created := time.Now().Add(-time.Hour).Truncate(time.Second)
	want := map[string][]string{} // per key, in created order
	n := 0
	for i := range perKey {
		for k := range keys + 1 {
			key := fmt.Sprintf("sub_%02d", k)
			if k == keys {
				key = stuck
			}
			id := fmt.Sprintf("evt_ord_%s_%02d", key, i)
			// Two events of a key share each second: the id breaks the tie.
			if r := harness.Post(t, urls[n%len(urls)], orderedBody(id, key, created.Add(time.Duration(i/2)*time.Second))); r.Code != 200 {
				t.Fatalf("posting %s: %d %s", id, r.Code, r.Body)
			}
			n++
			want[key] = append(want[key], id)
		}
	}
	unkeyed := harness.EventBody("evt_ord_unkeyed", "invoice.paid") // data.object.id is in_1Qx: keyed too
	if r := harness.Post(t, urls[0], []byte(`{"id":"evt_ord_nokey","object":"event","created":1,"data":{"object":{}},"livemode":false,"type":"invoice.paid"}`)); r.Code != 200 {
		t.Fatalf("posting an event without the key: %d %s", r.Code, r.Body)
	}
	if r := harness.Post(t, urls[1], unkeyed); r.Code != 200 {
		t.Fatalf("posting: %d %s", r.Code, r.Body)
	}

	delivered := func(c []call) map[string][]string {
		got := map[string][]string{}
		for _, x := range c {
			if x.ok {
				got[x.key] = append(got[x.key], x.id)
			}
		}
		return got
	}
	// Every other key is delivered while the stuck one fails.
	var calls []call
	eventually.Require(t, 30*time.Second, "every key but the failing one delivered", func() bool {
		calls = out.snapshot()
		got := delivered(calls)
		for k := range keys {
			if key := fmt.Sprintf("sub_%02d", k); len(got[key]) < perKey {
				return false
			}
		}
		return len(got[""]) == 1 && len(got["in_1Qx"]) == 1
	}, func() string { return fmt.Sprintf("%d calls", len(calls)) })
	if got := delivered(calls)[stuck]; len(got) != 0 {
		t.Fatalf("the failing key delivered %v", got)
	}
	out.mu.Lock()
	stuckAttempts, laterAttempts := out.attempts[want[stuck][0]], out.attempts[want[stuck][1]]
	out.mu.Unlock()
	if stuckAttempts < 2 || laterAttempts != 0 {
		t.Fatalf("the failing key's head was tried %d times and the next %d; want retries of the head alone", stuckAttempts, laterAttempts)
	}
	out.blocked.Store(false)
	eventually.Require(t, 30*time.Second, "the failing key delivered once it recovers", func() bool {
		calls = out.snapshot()
		return len(delivered(calls)[stuck]) >= perKey
	}, func() string { return fmt.Sprintf("%v", delivered(calls)[stuck]) })

	got := delivered(calls)
	failures := 0
	for key, ids := range want {
		if !slices.Equal(got[key], ids) {
			t.Errorf("key %s delivered %v, want %v (created order, each once)", key, got[key], ids)
		}
		var spans []call
		for _, c := range calls {
			if c.key == key {
				spans = append(spans, c)
				if !c.ok {
					failures++
				}
			}
		}
		slices.SortFunc(spans, func(a, b call) int { return a.start.Compare(b.start) })
		for i := 1; i < len(spans); i++ {
			if spans[i].start.Before(spans[i-1].end) {
				t.Errorf("key %s: %s started at %s before %s ended at %s", key, spans[i].id, spans[i].start.Format(time.StampMicro),
					spans[i-1].id, spans[i-1].end.Format(time.StampMicro))
			}
		}
	}
	if failures <= keys*perKey/10 {
		t.Fatalf("%d failed calls: the sink hardly failed, the test proved little", failures)
	}
	t.Logf("%d calls, %d failed", len(calls), failures)
}

// TestKeyedRetryGoesWhileArrivalsKeepComing: the deliveries the intake
// stores wake the sweeper to claim their keys' heads, many times a
// second; the timed sweep, which takes a failed head when its retry is
// due, still runs between them.
func TestKeyedRetryGoesWhileArrivalsKeepComing(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	path, err := event.ParseKeyPath("data.object.id")
	if err != nil {
		t.Fatal(err)
	}
	var retried atomic.Bool
	var first atomic.Bool
	out := funcSink(func(ctx context.Context, ev *event.Event) error {
		if ev.ID != "evt_retry_head" {
			return nil
		}
		if first.CompareAndSwap(false, true) {
			return harness.ErrSinkDown
		}
		retried.Store(true)
		return nil
	})
	cfg := fastRetries
	cfg.SweepInterval = 300 * time.Millisecond // the arrivals below wake it every 10 ms
	cfg.Destinations = []delivery.Destination{{Name: "ordered", Sink: out, OrderKey: path}}
	url := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Delivery: cfg}).URL
	created := time.Now().Add(-time.Hour).Truncate(time.Second)
	if r := harness.Post(t, url, orderedBody("evt_retry_head", "sub_retry", created)); r.Code != 200 {
		t.Fatalf("posting: %d %s", r.Code, r.Body)
	}
	eventually.Require(t, 10*time.Second, "the first attempt made", first.Load, func() string { return "" })
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; !retried.Load(); i++ {
		if time.Now().After(deadline) {
			t.Fatalf("the failed head was not retried in 20 s while %d events of other keys arrived", i)
		}
		id := fmt.Sprintf("evt_arrival_%04d", i)
		if r := harness.Post(t, url, orderedBody(id, fmt.Sprintf("sub_arrival_%d", i), created)); r.Code != 200 {
			t.Fatalf("posting %s: %d %s", id, r.Code, r.Body)
		}
		time.Sleep(10 * time.Millisecond) // the arrivals' pace: more often than the sweeps
	}
}

// TestKeyedDeliveriesWithoutRoomAreGivenBack: a keyed delivery is stored
// under its instance's lease (an hour here) and held; one that finds no
// room to be held (the lane's bytes taken) gives its lease back at once,
// so that it goes by a later claim, not after the hour.
func TestKeyedDeliveriesWithoutRoomAreGivenBack(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	path, err := event.ParseKeyPath("data.object.id")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string]int{}
	out := funcSink(func(ctx context.Context, ev *event.Event) error {
		time.Sleep(20 * time.Millisecond) // holds the lane's bytes meanwhile
		mu.Lock()
		got[ev.ID]++
		mu.Unlock()
		return nil
	})
	cfg := fastRetries
	cfg.Lease = time.Hour
	cfg.QueueMaxBytes = 1 // one event at a time
	cfg.Destinations = []delivery.Destination{{Name: "ordered", Sink: out, OrderKey: path}}
	url := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Delivery: cfg}).URL
	created := time.Now().Add(-time.Hour).Truncate(time.Second)
	var ids []string
	var wg sync.WaitGroup
	for i := range 30 {
		id := fmt.Sprintf("evt_room_%02d", i)
		ids = append(ids, id)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := harness.Post(t, url, orderedBody(id, fmt.Sprintf("sub_room_%02d", i), created)); r.Code != 200 {
				t.Errorf("posting %s: %d %s", id, r.Code, r.Body)
			}
		}()
	}
	wg.Wait()
	eventually.Require(t, 30*time.Second, "every event delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == len(ids)
	}, func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("%d of %d delivered", len(got), len(ids))
	})
	mu.Lock()
	defer mu.Unlock()
	for id, n := range got {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
}
