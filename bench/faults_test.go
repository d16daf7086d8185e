package bench

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"
	"github.com/valyala/fasthttp"
)

const testSecret = "whsec_bench_test_secret"

// stubMode says how a stubReceiver misbehaves.
type stubMode int

const (
	forwardOnce  stubMode = iota // correct: verify, deduplicate, forward each new event once
	dropSome                     // answer accepted but forward no copy of 1 in 1,000 events
	forwardTwice                 // forward 1 in 1,000 events twice
	skipVerify                   // forward whatever comes, bad requests too
	flaky                        // correct, but answer 503 to the first delivery of events 99, 199...
	dropAtB                      // fanout: forward 1 in 1,000 events to every destination but b
	twiceAtC                     // fanout: forward 1 in 1,000 events to c twice
	strayToRoot                  // fanout: forward 1 in 1,000 events to / as well
)

// stubReceiver is a tiny in-process receiver: it checks the signature and
// the body, deduplicates in memory, forwards each new event to the sink
// before answering 200 accepted, and answers later copies duplicate. Its
// mode plants one fault.
type stubReceiver struct {
	mode   stubMode
	dests  []string // sink paths without the slash: [""], or fanout's
	sink   *fasthttp.HostClient
	seen   sync.Map
	failed sync.Map // flaky: events answered 503 once
	n      atomic.Int64
}

func (s *stubReceiver) handle(ctx *fasthttp.RequestCtx) {
	body := ctx.PostBody()
	id, typ := topLevel(body, "id"), topLevel(body, "type")
	if s.mode != skipVerify {
		if err := webhook.ValidatePayload(body, string(ctx.Request.Header.Peek("Stripe-Signature")), testSecret); err != nil {
			ctx.Error(`{"error":"bad signature"}`, fasthttp.StatusBadRequest)
			return
		}
		// A cheap stand-in for parsing: bench bodies are broken by cutting
		// them in half or by renaming "type".
		if !bytes.HasSuffix(body, []byte("}")) || id == "" || typ == "" {
			ctx.Error(`{"error":"bad event"}`, fasthttp.StatusBadRequest)
			return
		}
	}
	if _, n, _ := ParseEventID([]byte(id)); s.mode == flaky && n%100 == 99 {
		if _, again := s.failed.LoadOrStore(id, true); !again {
			ctx.Error(`{"error":"event could not be stored; retry"}`, fasthttp.StatusServiceUnavailable)
			return
		}
	}
	if _, dup := s.seen.LoadOrStore(id, true); dup {
		ctx.SetBodyString(`{"status":"duplicate","event_id":"` + id + `"}`)
		return
	}
	faulty := s.n.Add(1)%1000 == 0
	dests := s.dests
	if faulty && s.mode == strayToRoot {
		dests = append([]string{""}, dests...)
	}
	for _, d := range dests {
		copies := 1
		switch {
		case !faulty:
		case s.mode == dropSome, s.mode == dropAtB && d == "b":
			copies = 0
		case s.mode == forwardTwice, s.mode == twiceAtC && d == "c":
			copies = 2
		}
		for range copies {
			if err := s.forward(d, id, typ, body); err != nil {
				s.seen.Delete(id)
				ctx.Error(`{"error":"sink down"}`, fasthttp.StatusServiceUnavailable)
				return
			}
		}
	}
	ctx.SetBodyString(`{"status":"accepted","event_id":"` + id + `"}`)
}

// topLevel returns the string value of a top-level key of a pretty-printed
// event (indented two spaces), or "" if there is none.
func topLevel(body []byte, key string) string {
	mark := []byte("\n  \"" + key + "\": \"")
	i := bytes.Index(body, mark)
	if i < 0 {
		return ""
	}
	rest := body[i+len(mark):]
	if j := bytes.IndexByte(rest, '"'); j >= 0 {
		return string(rest[:j])
	}
	return ""
}

func (s *stubReceiver) forward(dest, id, typ string, body []byte) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + s.sink.Addr + "/" + dest)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.Set("Idempotency-Key", id)
	req.Header.Set("Stripe-Event-Type", typ)
	req.SetBodyRaw(body)
	return s.sink.DoTimeout(req, resp, 5*time.Second)
}

// serveOnLoopback serves h on a free port until the test ends.
func serveOnLoopback(t *testing.T, serve func(net.Listener) error, shutdown func() error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = serve(ln) }()
	t.Cleanup(func() { _ = shutdown() })
	return ln.Addr().String()
}

// runAgainstStub runs scenario against a stub in mode, through the real
// generator, load generator, sink and verification.
func runAgainstStub(t *testing.T, mode stubMode, scenario string, events int, rate float64) *Result {
	t.Helper()
	sink := NewSinkServer(SinkConfig{})
	sinkAddr := serveOnLoopback(t, sink.Serve, sink.Shutdown)
	stub := &stubReceiver{mode: mode, dests: []string{""}, sink: &fasthttp.HostClient{Addr: sinkAddr, MaxConns: 64}}
	if scenario == Fanout {
		stub.dests = FanoutDestinations
	}
	srv := &fasthttp.Server{Handler: stub.handle}
	addr := serveOnLoopback(t, srv.Serve, srv.Shutdown)
	client, err := NewSinkClient("http://" + sinkAddr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, RunConfig{
		Scenario: scenario, URLs: []string{"http://" + addr + "/webhooks/stripe"}, Secret: testSecret,
		Sink: client, Connections: 16, Events: events, ReplaySet: 300, Rate: rate,
		DrainTimeout: time.Second, Settle: 100 * time.Millisecond, RetryFor: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Verify == nil {
		t.Fatal("no verification")
	}
	return res
}

func TestVerificationPassesCorrectReceiver(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		mode     stubMode
		scenario string
		events   int
		rate     float64
	}{
		{"unique", forwardOnce, Unique, 2000, 0},
		{"storm", forwardOnce, Storm, 150, 0},
		{"replay", forwardOnce, Replay, 600, 0},
		{"mixed", forwardOnce, Mixed, 600, 0},
		{"open loop", forwardOnce, Unique, 300, 3000},
		{"503 then retried", flaky, Unique, 1000, 0},
		{"fanout", forwardOnce, Fanout, 2000, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := runAgainstStub(t, tc.mode, tc.scenario, tc.events, tc.rate)
			v := res.Verify
			if !v.OK() {
				t.Fatalf("failures: %v; samples %v", v.Failures, v.Samples)
			}
			if v.Expected == 0 || v.Delivered != v.Expected || !v.Drained {
				t.Fatalf("expected %d, delivered %d, drained %v", v.Expected, v.Delivered, v.Drained)
			}
			if tc.scenario == Mixed && (v.BadSent == 0 || res.Counts.Status4xx != v.BadSent) {
				t.Fatalf("mixed: %d bad sent, %d answered 4xx", v.BadSent, res.Counts.Status4xx)
			}
			if tc.scenario == Storm && res.Counts.Duplicate != 7*res.Counts.Accepted {
				t.Fatalf("storm: %d accepted, %d duplicate; want 7 duplicates each", res.Counts.Accepted, res.Counts.Duplicate)
			}
			if tc.mode == flaky && (res.Counts.Status5xx != 10 || res.Counts.Retries != 10) {
				t.Fatalf("flaky: %d 5xx and %d retries, want 10 each", res.Counts.Status5xx, res.Counts.Retries)
			}
			if tc.scenario == Fanout {
				if len(v.Destinations) != 3 || v.Expected != 3*res.Counts.Accepted || v.Stray != 0 {
					t.Fatalf("fanout: %d accepted, verification %+v", res.Counts.Accepted, v)
				}
				for _, d := range v.Destinations {
					if !d.OK() || d.Delivered != res.Counts.Accepted {
						t.Fatalf("fanout: destination %+v, %d accepted", d, res.Counts.Accepted)
					}
				}
			}
			if (res.Mode == "open") != (tc.rate > 0) {
				t.Fatalf("mode %s at rate %g", res.Mode, tc.rate)
			}
		})
	}
}

func TestVerificationCatchesPlantedFaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		mode     stubMode
		scenario string
		events   int
		check    func(v *Verification) bool
	}{
		{"drops 1 in 1000", dropSome, Unique, 3000, func(v *Verification) bool { return v.Missing == 3 && !v.Drained }},
		{"delivers 1 in 1000 twice", forwardTwice, Unique, 3000, func(v *Verification) bool { return v.OverDelivered == 3 && v.ExtraDeliveries == 3 }},
		{"forwards bad requests", skipVerify, Mixed, 600, func(v *Verification) bool {
			return v.BadAtSink == v.BadSent && v.BadAccepted == v.BadSent && v.BadSent > 0
		}},
		{"fanout: b misses 1 in 1000", dropAtB, Fanout, 3000, func(v *Verification) bool {
			return v.Missing == 3 && !v.Drained && onlyAt(v, "b", DestVerification{Missing: 3}) &&
				failureNames(v, "never reached destination /b")
		}},
		{"fanout: c gets 1 in 1000 twice", twiceAtC, Fanout, 3000, func(v *Verification) bool {
			return v.OverDelivered == 3 && v.Drained && onlyAt(v, "c", DestVerification{OverDelivered: 3, ExtraDeliveries: 3}) &&
				failureNames(v, "reached destination /c more than once")
		}},
		{"fanout: 1 in 1000 also sent to /", strayToRoot, Fanout, 3000, func(v *Verification) bool {
			return v.Stray == 3 && v.Missing+v.OverDelivered+v.Unexpected == 0 && len(v.Destinations) == 3 &&
				failureNames(v, "no destination of the run")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := runAgainstStub(t, tc.mode, tc.scenario, tc.events, 0).Verify
			if v.OK() {
				t.Fatal("verification passed a faulty receiver")
			}
			if !tc.check(v) {
				t.Fatalf("wrong diagnosis: %+v", v)
			}
			if !strings.Contains(strings.Join(v.Failures, "\n"), " ") {
				t.Fatalf("failures not described: %v", v.Failures)
			}
		})
	}
}

// onlyAt reports whether destination dest has the problem counts of want
// and the others none.
func onlyAt(v *Verification, dest string, want DestVerification) bool {
	if len(v.Destinations) != len(FanoutDestinations) {
		return false
	}
	for _, d := range v.Destinations {
		got := DestVerification{Missing: d.Missing, OverDelivered: d.OverDelivered, ExtraDeliveries: d.ExtraDeliveries, Unexpected: d.Unexpected, BadAtSink: d.BadAtSink}
		if d.Dest == dest && got != want || d.Dest != dest && !d.OK() {
			return false
		}
	}
	return true
}

func failureNames(v *Verification, text string) bool {
	return strings.Contains(strings.Join(v.Failures, "\n"), text)
}
