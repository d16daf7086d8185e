package delivery_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/pace"
	"github.com/oncehook/oncehook/sink"
	"github.com/oncehook/oncehook/store"
)

// arrivals is an HTTP destination that records when each request came,
// by path, and how often each event id came.
type arrivals struct {
	mu    sync.Mutex
	times map[string][]time.Time
	ids   map[string]int
}

func newArrivals(t *testing.T) (*arrivals, *httptest.Server) {
	a := &arrivals{times: map[string][]time.Time{}, ids: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		a.mu.Lock()
		a.times[r.URL.Path] = append(a.times[r.URL.Path], now)
		a.ids[r.Header.Get("Idempotency-Key")]++
		a.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return a, srv
}

func (a *arrivals) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.ids)
}

// busiestSecond is the most arrivals in any one-second window, over the
// given paths (all of them when none is given).
func (a *arrivals) busiestSecond(paths ...string) int {
	a.mu.Lock()
	var ts []time.Time
	for p, times := range a.times {
		if len(paths) == 0 || slices.Contains(paths, p) {
			ts = append(ts, times...)
		}
	}
	a.mu.Unlock()
	slices.SortFunc(ts, func(x, y time.Time) int { return x.Compare(y) })
	most := 0
	for i, j := 0, 0; j < len(ts); j++ {
		for ts[j].Sub(ts[i]) >= time.Second {
			i++
		}
		most = max(most, j-i+1)
	}
	return most
}

// requireOnce fails unless each of ids came exactly once.
func (a *arrivals) requireOnce(t *testing.T, ids []string) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		if a.ids[id] != 1 {
			t.Errorf("%s came %d times, want 1", id, a.ids[id])
		}
	}
	if len(a.ids) != len(ids) {
		t.Errorf("the destination got %d ids, want %d", len(a.ids), len(ids))
	}
}

// postBurst posts n events, spread over urls, 16 at a time.
func postBurst(t *testing.T, urls []string, prefix string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range next {
				if r := harness.Post(t, urls[i%len(urls)], harness.EventBody(ids[i], "invoice.paid")); r.Code != 200 {
					t.Errorf("%s: %d %s", ids[i], r.Code, r.Body)
				}
			}
		})
	}
	for i := range n {
		ids[i] = fmt.Sprintf("%s_%04d", prefix, i)
		next <- i
	}
	close(next)
	wg.Wait()
	return ids
}

var perSecond100 = pace.Rate{Count: 100, Per: time.Second}

// pacedInstance starts an instance whose one destination, "paced", is an
// HTTP sink at url with RATE=100/s.
func pacedInstance(t *testing.T, cfg harness.InstanceConfig, url string) *harness.Instance {
	t.Helper()
	cfg.Delivery.Destinations = []delivery.Destination{{Name: "paced", Sink: sink.NewHTTP(url, nil), Rate: perSecond100}}
	return harness.StartInstance(t, cfg)
}

// TestRateHoldsAcrossInstances: three instances share RATE=100/s through
// Redis. A 3,000-event burst reaches the destination at most ~100 a
// second (no one-second window holds more than 110), waiting as pending
// rows (the oldest pending age grows) without counting attempts, and
// every event is delivered once.
func TestRateHoldsAcrossInstances(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	a, srv := newArrivals(t)
	var urls []string
	for range 3 {
		in := pacedInstance(t, harness.InstanceConfig{Pool: testenv.AnotherPool(t, pool), Redis: rdb, KeyPrefix: prefix}, srv.URL+"/hooks")
		urls = append(urls, in.URL)
	}
	start := time.Now()
	ids := postBurst(t, urls, "evt_rate", 3000)
	posted := time.Since(start)

	// A backlog of pending rows, not of failures.
	age, err := store.New(pool).OldestPendingAge(context.Background(), "paced")
	if err != nil {
		t.Fatal(err)
	}
	if n := a.count(); n < len(ids) && age <= 0 {
		t.Errorf("%d of %d delivered after the burst, but the oldest pending age is %s", n, len(ids), age)
	}
	waitAllDelivered(t, pool, len(ids), 90*time.Second)
	took := time.Since(start)
	a.requireOnce(t, ids)
	if most := a.busiestSecond(); most > 110 {
		t.Errorf("the destination got %d deliveries in one second; RATE is 100/s", most)
	}
	if took < 29*time.Second {
		t.Errorf("3,000 deliveries at 100/s took %s; want about 30s", took)
	}
	var attempts int
	if err := pool.QueryRow(context.Background(), `SELECT max(attempts) FROM stripe_webhook_deliveries`).Scan(&attempts); err != nil {
		t.Fatal(err)
	}
	if attempts != 1 {
		t.Errorf("a delivery took %d attempts; waiting for the rate must count none", attempts)
	}
	t.Logf("posted in %s, all delivered in %s, busiest second %d", posted, took, a.busiestSecond())
}

// TestRateWithoutRedisIsSplitByInstances: without Redis, two live
// instances with RATE=100/s take ~50/s each.
func TestRateWithoutRedisIsSplitByInstances(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	a, srv := newArrivals(t)
	var urls []string
	for _, path := range []string{"/a", "/b"} { // one path per instance
		in := pacedInstance(t, harness.InstanceConfig{Pool: testenv.AnotherPool(t, pool)}, srv.URL+path)
		urls = append(urls, in.URL)
	}
	start := time.Now()
	ids := postBurst(t, urls, "evt_split", 600)
	waitAllDelivered(t, pool, len(ids), 60*time.Second)
	took := time.Since(start)
	a.requireOnce(t, ids)
	for _, path := range []string{"/a", "/b"} {
		if most := a.busiestSecond(path); most > 55 {
			t.Errorf("instance %s delivered %d in one second; its share of 100/s is 50/s", path, most)
		}
	}
	if most := a.busiestSecond(); most > 110 {
		t.Errorf("the destination got %d deliveries in one second; RATE is 100/s", most)
	}
	if took < 5500*time.Millisecond {
		t.Errorf("600 deliveries at 100/s took %s; want about 6s", took)
	}
}

// TestARateSlotPastTheLeaseGivesTheDeliveryBack: a delivery whose slot
// would come after its lease allows a start waits no longer: it stays
// pending, uncounted, and a sweeper takes it again once the lease ends.
func TestARateSlotPastTheLeaseGivesTheDeliveryBack(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	a, srv := newArrivals(t)
	// A lease of 10.2s leaves 5s for the wait (less the 5s margin and the
	// 200ms timeout): at 2/s, 11 of 16 events get a slot; 5 are given back.
	cfg := harness.InstanceConfig{Pool: pool, Delivery: delivery.DispatcherConfig{Lease: 10200 * time.Millisecond, SweepInterval: 50 * time.Millisecond}}
	cfg.Delivery.Destinations = []delivery.Destination{{Name: "paced", Sink: sink.NewHTTP(srv.URL, nil),
		Rate: pace.Rate{Count: 2, Per: time.Second}, DeliveryTimeout: 200 * time.Millisecond}}
	in := harness.StartInstance(t, cfg)
	start := time.Now()
	ids := postBurst(t, []string{in.URL}, "evt_back", 16)
	waitAllDelivered(t, pool, len(ids), 30*time.Second)
	took := time.Since(start)
	a.requireOnce(t, ids)
	if took < 10*time.Second {
		t.Errorf("all delivered in %s: no delivery waited for its lease to end", took)
	}
	var attempts, history int
	err := pool.QueryRow(context.Background(), `SELECT max(attempts), (SELECT count(*) FROM stripe_webhook_delivery_attempts)
		FROM stripe_webhook_deliveries`).Scan(&attempts, &history)
	if err != nil {
		t.Fatal(err)
	}
	if attempts != 1 || history != len(ids) {
		t.Errorf("max attempts %d, %d attempts recorded; want 1 each, %d: a delivery given back is no attempt", attempts, history, len(ids))
	}
}

// concurrencySink counts its calls under way, and the most at once.
type concurrencySink struct {
	mu        sync.Mutex
	now, most int
	delivered map[string]int
}

func (s *concurrencySink) Deliver(ctx context.Context, ev *event.Event) error {
	s.mu.Lock()
	s.now++
	s.most = max(s.most, s.now)
	s.mu.Unlock()
	time.Sleep(20 * time.Millisecond) // Intended fault window: a slow destination, so that calls overlap
	s.mu.Lock()
	s.now--
	s.delivered[ev.ID]++
	s.mu.Unlock()
	return nil
}

func (s *concurrencySink) Close() error { return nil }

// TestMaxInFlightBoundsConcurrentDeliveries: with 8 workers and
// MAX_IN_FLIGHT=2, no more than 2 calls to the destination overlap, and
// every event is delivered.
func TestMaxInFlightBoundsConcurrentDeliveries(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	out := &concurrencySink{delivered: map[string]int{}}
	cfg := harness.InstanceConfig{Pool: pool}
	cfg.Delivery.Destinations = []delivery.Destination{{Name: "narrow", Sink: out, Workers: 8, MaxInFlight: 2}}
	in := harness.StartInstance(t, cfg)
	ids := postBurst(t, []string{in.URL}, "evt_narrow", 100)
	waitAllDelivered(t, pool, len(ids), 30*time.Second)
	out.mu.Lock()
	defer out.mu.Unlock()
	if out.most != 2 {
		t.Errorf("%d deliveries overlapped; want MAX_IN_FLIGHT, 2", out.most)
	}
	if len(out.delivered) != len(ids) {
		t.Errorf("%d of %d delivered", len(out.delivered), len(ids))
	}
}
