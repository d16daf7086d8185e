package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/faultproxy"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
)

// The fault suite: a real receiver process reaches Postgres and Redis
// through Toxiproxy proxies and delivers to an HTTP sink. Each test injects
// one fault during a storm, heals it, and checks end to end that every event
// that got a 200 is stored and delivered, at most once outside a kill
// window, that the receiver recovers by itself, and that its goroutines and
// file descriptors come back down.

type faultRig struct {
	t      *testing.T
	pool   *pgxpool.Pool
	schema string
	killed atomic.Bool // set once a killed receiver has exited
	// inflight counts each event's requests under way; atKill holds the
	// events that had one when the receiver was killed.
	inflightMu sync.Mutex
	inflight   map[string]int
	atKill     map[string]bool
	pg, rd     *faultproxy.Proxy
	sink       *downstream
	sinkDown   atomic.Bool
	addr       string
	admin      string
	env        []string
	proc       *process
	run        string
}

func newFaultRig(t *testing.T) *faultRig {
	t.Helper()
	pool := testenv.Postgres(t)
	schema := pool.Config().ConnConfig.RuntimeParams["search_path"]
	r := &faultRig{t: t, pool: pool, schema: schema, addr: testenv.FreeAddr(t), admin: testenv.FreeAddr(t), run: fmt.Sprint(time.Now().UnixNano()),
		inflight: map[string]int{}, atKill: map[string]bool{}}
	r.pg = faultproxy.New(t, "postgres", faultproxy.Upstream(t, testenv.DatabaseURL(t)))
	r.rd = faultproxy.New(t, "redis", faultproxy.Upstream(t, testenv.RedisURL(t)))
	r.sink = &downstream{counts: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.sinkDown.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		r.sink.mu.Lock()
		r.sink.counts[req.Header.Get("Idempotency-Key")]++
		r.sink.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	r.env = []string{
		"STRIPE_WEBHOOK_SECRET=" + harness.Secret,
		"REDIS_URL=" + faultproxy.Via(t, testenv.RedisURL(t), r.rd),
		"REDIS_TIMEOUT=50ms",
		"SINK_URL=" + srv.URL,
		"DELIVERY_TIMEOUT=1s", "DELIVERY_LEASE=11s",
		"ADMIN_ADDR=" + r.admin, "LOG_LEVEL=error",
	}
	r.start()
	return r
}

// start runs the receiver, reaching Postgres through the proxy.
func (r *faultRig) start() {
	r.proc = startProcess(r.t, r.addr, schemaURL(faultproxy.Via(r.t, testenv.DatabaseURL(r.t), r.pg), r.schema), r.env...)
}

// storm sends events, each in copies at once, retrying like Stripe (any
// non-200 or transport error, every 100ms) until each copy gets a 200. fault
// runs once a third of the events are sent and returns when it has healed.
// It returns the events, and those answered "accepted" before a killed
// receiver exited.
func (r *faultRig) storm(events, copies int, fault func()) (ids []string, acceptedBefore map[string]bool) {
	t := r.t
	acceptedBefore = map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 24)
	for e := range events {
		if e == events/3 {
			done := make(chan struct{})
			go func() { defer close(done); fault() }()
			defer func() { <-done }()
		}
		id := fmt.Sprintf("evt_fault_%s_%03d", r.run, e)
		ids = append(ids, id)
		body := harness.EventBody(id, "invoice.paid")
		for range copies {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				// Like Stripe, a copy is sent again until it gets a 200.
				if !eventually.Within(60*time.Second, func() bool {
					r.inflightMu.Lock()
					r.inflight[id]++
					r.inflightMu.Unlock()
					resp, err := postRaw("http://"+r.addr+"/webhooks/stripe", body)
					r.inflightMu.Lock()
					r.inflight[id]--
					r.inflightMu.Unlock()
					if err != nil || resp.code != 200 {
						return false
					}
					if !r.killed.Load() && strings.Contains(resp.body, "accepted") {
						mu.Lock()
						acceptedBefore[id] = true
						mu.Unlock()
					}
					return true
				}) {
					t.Errorf("%s: no 200 within 60s of retries", id)
				}
			})
		}
	}
	wg.Wait()
	return ids, acceptedBefore
}

// markInflight records the events with a request under way now.
func (r *faultRig) markInflight() {
	r.inflightMu.Lock()
	defer r.inflightMu.Unlock()
	for id, n := range r.inflight {
		if n > 0 {
			r.atKill[id] = true
		}
	}
}

// verify checks that every event is stored and delivered, exactly once
// unless listed in mayRepeat.
func (r *faultRig) verify(ids []string, mayRepeat map[string]bool) {
	t := r.t
	var stored int
	if err := r.pool.QueryRow(context.Background(), "SELECT count(*) FROM stripe_webhook_events WHERE event_id = ANY($1)", ids).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != len(ids) {
		t.Errorf("%d of %d events that got a 200 are stored", stored, len(ids))
	}
	missing := 0
	eventually.Require(t, 45*time.Second, "every event that got a 200 at the sink", func() bool {
		got := r.sink.snapshot()
		missing = 0
		for _, id := range ids {
			if got[id] == 0 {
				missing++
			}
		}
		return missing == 0
	}, func() string { return fmt.Sprintf("%d of %d never reached it", missing, len(ids)) })
	repeats := 0
	for _, id := range ids {
		if n := r.sink.snapshot()[id]; n > 1 {
			repeats++
			if !mayRepeat[id] {
				t.Errorf("%s delivered %d times outside a kill window", id, n)
			}
		}
	}
	t.Logf("%d events stored and delivered; %d delivered twice", len(ids), repeats)
}

// recovered checks the receiver heals by itself: ready, accepting a new
// event, and with no more goroutines and open files than limit allows over
// the given levels. It returns the levels it settled at.
func (r *faultRig) recovered(goroutines, fds, limitG, limitF float64) (float64, float64) {
	t := r.t
	id := fmt.Sprintf("evt_fault_after_%s_%d", r.run, time.Now().UnixNano())
	if resp, err := postRaw("http://"+r.addr+"/webhooks/stripe", harness.EventBody(id, "invoice.paid")); err != nil || resp.code != 200 {
		t.Fatalf("a new event after the fault: %v %v", resp, err)
	}
	var g, f float64
	var ready bool
	eventually.Require(t, 20*time.Second, "the receiver to recover", func() bool {
		fams := scrape(t, "http://"+r.admin+"/metrics")
		g, f = value(fams, "go_goroutines"), value(fams, "process_open_fds")
		resp, err := http.Get("http://" + r.addr + "/readyz")
		ready = err == nil && resp.StatusCode == 200
		if resp != nil {
			resp.Body.Close()
		}
		return ready && g <= goroutines+limitG && f <= fds+limitF
	}, func() string {
		return fmt.Sprintf("ready=%v goroutines %v (from %v), open fds %v (from %v)", ready, g, goroutines, f, fds)
	})
	return g, f
}

// baseline warms the receiver up and reads its goroutines and open files.
func (r *faultRig) baseline() (goroutines, fds float64) {
	ids, _ := r.storm(30, 2, func() {})
	r.verify(ids, nil)
	// Settled: every result written, so that a later fault cannot make the
	// baseline's events look delivered twice.
	var delivered int
	eventually.Require(r.t, 20*time.Second, "every baseline delivery recorded", func() bool {
		if err := r.pool.QueryRow(context.Background(), `SELECT count(*) FROM stripe_webhook_deliveries
			WHERE event_id = ANY($1) AND status = 'delivered'`, ids).Scan(&delivered); err != nil {
			r.t.Fatal(err)
		}
		return delivered == len(ids)
	}, func() string { return fmt.Sprintf("%d of %d recorded", delivered, len(ids)) })
	fams := scrape(r.t, "http://"+r.admin+"/metrics")
	return value(fams, "go_goroutines"), value(fams, "process_open_fds")
}

// Pools grow under a storm and stay (idle HTTP sink connections, two
// goroutines each, up to 64; Postgres and Redis pools): the first cycle may
// add up to that much, a second identical cycle must add almost nothing, or
// something leaks per fault.
const (
	poolGoroutines, poolFDs = 200, 100
	leakGoroutines, leakFDs = 30, 15
)

// evidence is a metric that shows the fault really hit the receiver.
type evidence struct {
	family string
	labels []string
	above  float64
}

// faultWindow is how long each fault lasts while a storm runs.
const faultWindow = 2 * time.Second

// runFault runs two storm cycles; in each, inject starts the fault, which
// lasts faultWindow, and heal ends it.
func runFault(t *testing.T, proof evidence, inject, heal func(r *faultRig)) {
	t.Parallel()
	r := newFaultRig(t)
	g, f := r.baseline()
	defer func() {
		if v := value(scrape(t, "http://"+r.admin+"/metrics"), proof.family, proof.labels...); v <= proof.above {
			t.Errorf("%s%v = %v: the fault never reached the receiver (want over %v)", proof.family, proof.labels, v, proof.above)
		}
	}()
	for cycle := range 2 {
		ids, _ := r.storm(120, 3, func() {
			inject(r)
			// Intended fault window: the fault lasts while the storm runs.
			time.Sleep(faultWindow)
			heal(r)
		})
		r.verify(ids, nil)
		if cycle == 0 {
			g, f = r.recovered(g, f, poolGoroutines, poolFDs)
		} else {
			r.recovered(g, f, leakGoroutines, leakFDs)
		}
	}
}

var (
	redisFellBack = evidence{"oncehook_dedup_decisions_total", []string{"path", "redis_fallback"}, 0}
	answered503   = evidence{"oncehook_requests_total", []string{"outcome", "unavailable"}, 0}
)

func TestFaultRedisLatencyAboveTimeout(t *testing.T) {
	runFault(t, redisFellBack, func(r *faultRig) {
		r.rd.Latency(t, 300*time.Millisecond) // REDIS_TIMEOUT is 50ms
	}, func(r *faultRig) {
		r.rd.Heal()
	})
}

func TestFaultRedisReset(t *testing.T) {
	runFault(t, redisFellBack, func(r *faultRig) {
		r.rd.ResetPeer(t)
	}, func(r *faultRig) {
		r.rd.Heal()
	})
}

func TestFaultRedisDownAndBack(t *testing.T) {
	runFault(t, redisFellBack, func(r *faultRig) {
		r.rd.Down()
	}, func(r *faultRig) {
		r.rd.Up(t)
	})
}

func TestFaultPostgresDownAndBack(t *testing.T) {
	runFault(t, answered503, func(r *faultRig) {
		r.pg.Down()
	}, func(r *faultRig) {
		r.pg.Up(t)
	})
}

func TestFaultPostgresSlowCommits(t *testing.T) {
	// Each batch waits 300ms more: over two cycles, seconds of commit time.
	runFault(t, evidence{"oncehook_insert_batch_seconds", nil, 2}, func(r *faultRig) {
		r.pg.Latency(t, 300*time.Millisecond)
	}, func(r *faultRig) {
		r.pg.Heal()
	})
}

func TestFaultSinkDownAndBack(t *testing.T) {
	runFault(t, evidence{"oncehook_deliveries_total", []string{"result", "retry"}, 0}, func(r *faultRig) {
		r.sinkDown.Store(true)
	}, func(r *faultRig) {
		r.sinkDown.Store(false)
	})
}

func TestFaultReceiverSIGKILLAndRestart(t *testing.T) {
	t.Parallel()
	r := newFaultRig(t)
	r.baseline()
	ids, acceptedBefore := r.storm(150, 3, func() {
		r.markInflight()
		if err := r.proc.cmd.Process.Kill(); err != nil {
			t.Error(err)
		}
		<-r.proc.exited
		r.killed.Store(true)
		// Intended fault window: the receiver stays dead for 500ms, and
		// Stripe's retries meet a dead address.
		time.Sleep(500 * time.Millisecond)
		r.start()
	})
	// An event whose request was under way at the kill may have been
	// stored and delivered with its "accepted" lost to the kill.
	maps.Copy(acceptedBefore, r.atKill)
	r.verify(ids, acceptedBefore)
	r.recovered(0, 0, poolGoroutines, poolFDs) // a new process: only bounded
}
