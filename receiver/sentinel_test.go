package receiver_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
)

// Decision paths on which Redis answered: a "done", an awaited claim, or a
// claim taken before the Postgres insert.
var redisPaths = []dedup.Path{dedup.PathRedisDone, dedup.PathRedisAwait, dedup.PathPostgres}

// decisionsByPath sums oncehook_dedup_decisions_total by path over the
// instances.
func decisionsByPath(t testing.TB, ins []*harness.Instance) map[dedup.Path]float64 {
	t.Helper()
	out := map[dedup.Path]float64{}
	for _, in := range ins {
		mfs, err := in.Metrics().Registry.Gather()
		if err != nil {
			t.Errorf("gathering metrics: %v", err)
			return out
		}
		for _, mf := range mfs {
			if mf.GetName() != "oncehook_dedup_decisions_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "path" {
						out[dedup.Path(l.GetValue())] += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	return out
}

func onRedis(d map[dedup.Path]float64) (n float64) {
	for _, p := range redisPaths {
		n += d[p]
	}
	return n
}

// TestRedisSentinelFailoverMidStorm: two instances share Postgres and a
// Redis behind Sentinel (REDIS_URL=redis+sentinel://…). A storm of signed
// webhooks, 16 requests at a time, each event sent twice (a quarter of
// them both copies at once, to different instances), each request sent
// again until it gets a 200. The master is killed (SIGKILL) a third of the
// way in. The instances answer through Postgres while there is no master,
// move to the promoted replica through the Sentinel and take their claims
// there; nothing is lost, every event is accepted and delivered once, and
// no request gets a 4xx.
//
// Not parallel: the storm takes both cores for half a minute, which would
// upset this package's latency tests (TestAbusersDoNotStarveStripe).
func TestRedisSentinelFailoverMidStorm(t *testing.T) {
	pool := testenv.Postgres(t)
	rs := testenv.StartRedisSentinel(t)
	const prefix = "oncehook:sentinel-test:"
	out := harness.NewRecordingSink()
	var ins []*harness.Instance
	for range 2 { // each with its own pool and Redis client, as separate processes have
		rdb, err := dedup.NewRedisClient(rs.URL(), 250*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := rdb.(*dedup.SentinelClient); !ok {
			t.Fatalf("NewRedisClient gave %T for %s", rdb, rs.URL())
		}
		t.Cleanup(func() { _ = rdb.Close() })
		ins = append(ins, harness.StartInstance(t, harness.InstanceConfig{Pool: testenv.AnotherPool(t, pool), Redis: rdb, KeyPrefix: prefix, Sink: out}))
	}

	const (
		events    = 3000
		inFlight  = 16
		killAfter = 1000 // events launched before the master is killed
		gateAt    = 2000 // events from here on wait for the promotion
		openMax   = 48   // events launched and not yet answered twice
	)
	id := func(e int) string { return fmt.Sprintf("evt_sentinel_%04d", e) }
	var (
		slots               = make(chan struct{}, inFlight)
		mu                  sync.Mutex
		accepted            = map[string]int{}
		answers, retried503 int
		launched            = make([]time.Time, events)
	)
	// post sends one copy until it gets a 200, as Stripe retries a 503 or a
	// failed connection; anything else fails the test.
	post := func(e, to int) {
		body := harness.EventBody(id(e), "invoice.paid")
		var resp harness.Response
		ok := eventually.Within(30*time.Second, func() bool {
			slots <- struct{}{}
			resp = harness.Post(t, ins[to].URL, body)
			<-slots
			if resp.Code == 503 || resp.Code == 0 {
				mu.Lock()
				retried503++
				mu.Unlock()
				return false
			}
			return true
		})
		mu.Lock()
		defer mu.Unlock()
		answers++
		switch {
		case !ok || resp.Code != 200:
			t.Errorf("%s: %d %s", id(e), resp.Code, resp.Body)
		case resp.Body == `{"status":"accepted","event_id":"`+id(e)+`"}`:
			accepted[id(e)]++
		case resp.Body != `{"status":"duplicate","event_id":"`+id(e)+`"}`:
			t.Errorf("%s: %d %s", id(e), resp.Code, resp.Body)
		}
	}

	// A sampler notes when decisions fell back to Postgres, and when the
	// Redis paths resumed.
	var (
		killed, promoted              time.Time
		firstFallback, lastFallback   time.Time
		firstRedisAfter               time.Time
		atKill, atPromotion, atEnd    map[dedup.Path]float64
		samplerMu                     sync.Mutex
		stopSampler                   = make(chan struct{})
		samplerDone                   = make(chan struct{})
		prevFallback, redisAtPromoted float64
	)
	go func() {
		defer close(samplerDone)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampler:
				return
			case <-tick.C:
			}
			d, now := decisionsByPath(t, ins), time.Now()
			samplerMu.Lock()
			if !killed.IsZero() && d[dedup.PathRedisFallback] > prevFallback {
				if firstFallback.IsZero() {
					firstFallback = now
				}
				lastFallback = now
			}
			prevFallback = d[dedup.PathRedisFallback]
			if !promoted.IsZero() && firstRedisAfter.IsZero() {
				if redisAtPromoted == 0 {
					redisAtPromoted = onRedis(d)
				} else if onRedis(d) > redisAtPromoted {
					firstRedisAfter = now
				}
			}
			samplerMu.Unlock()
		}
	}()

	var oldMaster, newMaster string
	promotedCh := make(chan struct{})
	start := time.Now()
	var wg sync.WaitGroup
	open := make(chan struct{}, openMax) // so that the kill comes mid-storm, not after the launches
	for e := range events {
		switch e {
		case killAfter:
			atKill = decisionsByPath(t, ins)
			oldMaster = rs.KillMaster(t)
			samplerMu.Lock()
			killed = time.Now()
			prevFallback = atKill[dedup.PathRedisFallback]
			samplerMu.Unlock()
			go func() {
				if !eventually.Within(20*time.Second, func() bool { newMaster, _ = rs.Promoted(oldMaster); return newMaster != "" }) {
					return // the gate below fails the test
				}
				atPromotion = decisionsByPath(t, ins)
				samplerMu.Lock()
				promoted = time.Now()
				samplerMu.Unlock()
				close(promotedCh)
			}()
		case gateAt:
			select {
			case <-promotedCh:
			case <-time.After(25 * time.Second):
				t.Fatal("no promotion within 25s of the kill")
			}
		}
		open <- struct{}{}
		launched[e] = time.Now()
		a, b := e%2, (e+1)%2
		wg.Go(func() {
			defer func() { <-open }()
			if e%4 == 0 { // both copies at once, to different instances
				var both sync.WaitGroup
				both.Go(func() { post(e, a) })
				post(e, b)
				both.Wait()
				return
			}
			post(e, a) // the copy after the first's 200, to the other instance
			post(e, b)
		})
	}
	wg.Wait()
	stormTook := time.Since(start)

	// A later resend of events acknowledged before the kill is a duplicate,
	// most of them answered by the "done" keys the replica had.
	beforeResend := decisionsByPath(t, ins)
	for e := 0; e < killAfter; e += 5 {
		wg.Go(func() { post(e, e%2) })
	}
	wg.Wait()
	afterResend := decisionsByPath(t, ins)
	close(stopSampler)
	<-samplerDone
	atEnd = afterResend

	if t.Failed() {
		t.FailNow()
	}
	if want := 2*events + killAfter/5; answers != want || len(accepted) != events {
		t.Fatalf("%d answers, %d ids accepted; want %d and %d", answers, len(accepted), want, events)
	}
	for id, n := range accepted {
		if n != 1 {
			t.Errorf("%s accepted %d times", id, n)
		}
	}
	if n := countRows(t, pool); n != events {
		t.Fatalf("%d rows, want %d", n, events)
	}
	out.WaitFor(t, 20*time.Second, func(c map[string]int) bool { return len(c) == events })
	for id, n := range out.Counts() {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}

	// After the promotion the instances claim on the new master: the events
	// launched a second after it have "done" keys there.
	if newMaster == oldMaster || newMaster != rs.MasterAddr(t) {
		t.Fatalf("master %s before, %s after, Sentinel names %s", oldMaster, newMaster, rs.MasterAddr(t))
	}
	nm := rs.Client(t, newMaster)
	var late, lateDone int
	eventually.Require(t, 5*time.Second, "done keys on the promoted master for the events after the promotion", func() bool {
		late, lateDone = 0, 0
		for e := range events {
			if launched[e].Before(promoted.Add(time.Second)) {
				continue
			}
			late++
			if v, _ := nm.Get(context.Background(), prefix+"evt:"+id(e)).Result(); v == "done" {
				lateDone++
			}
		}
		return late > 0 && lateDone >= late*95/100
	}, func() string { return fmt.Sprintf("%d of %d events have a done key", lateDone, late) })
	if after := onRedis(atEnd) - onRedis(atPromotion); after < float64(late) {
		t.Errorf("%v decisions on the Redis paths after the promotion, want at least %d", after, late)
	}
	if atEnd[dedup.PathRedisFallback] == atKill[dedup.PathRedisFallback] {
		t.Errorf("no decision fell back to Postgres while the master was down: was it killed?")
	}
	if firstRedisAfter.IsZero() {
		t.Errorf("the Redis paths did not resume after the promotion")
	}
	t.Logf("storm: %d events, %d answers (%d 503s or refused connections sent again) in %v",
		events, answers, retried503, stormTook.Round(time.Millisecond))
	t.Logf("master %s killed at %v; Sentinel promoted %s %v after the kill",
		oldMaster, killed.Sub(start).Round(time.Millisecond), newMaster, promoted.Sub(killed).Round(time.Millisecond))
	t.Logf("fast path stood aside: first fallback %v after the kill, last %v after it; Redis paths again %v after the promotion",
		firstFallback.Sub(killed).Round(time.Millisecond), lastFallback.Sub(killed).Round(time.Millisecond), firstRedisAfter.Sub(promoted).Round(time.Millisecond))
	t.Logf("decisions at the kill %v; at the promotion %v; at the end %v", atKill, atPromotion, atEnd)
	t.Logf("resend of %d pre-kill events: %v redis_done, %v postgres, %v redis_fallback",
		killAfter/5, afterResend[dedup.PathRedisDone]-beforeResend[dedup.PathRedisDone],
		afterResend[dedup.PathPostgres]-beforeResend[dedup.PathPostgres],
		afterResend[dedup.PathRedisFallback]-beforeResend[dedup.PathRedisFallback])
	t.Logf("%d of %d events launched a second after the promotion have done keys on the new master", lateDone, late)
}
