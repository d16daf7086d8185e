package bench

import (
	"context"
	"testing"

	"github.com/valyala/fasthttp"
)

func postDelivery(t *testing.T, addr, id, typ, body string) {
	t.Helper()
	postTo(t, addr, "/", id, typ, body)
}

// postTo delivers to the sink's path (its destination).
func postTo(t *testing.T, addr, path, id, typ, body string) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + addr + path)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.Set("Idempotency-Key", id)
	if typ != "" {
		req.Header.Set("Stripe-Event-Type", typ)
	}
	req.SetBodyString(body)
	if err := fasthttp.Do(req, resp); err != nil || resp.StatusCode() != 200 {
		t.Fatalf("delivery: %v %d", err, resp.StatusCode())
	}
}

func TestSinkCountsDeliveriesPerEvent(t *testing.T) {
	t.Parallel()
	s := NewSinkServer(SinkConfig{MaxBytes: 8192})
	addr := serveOnLoopback(t, s.Serve, s.Shutdown)
	c, err := NewSinkClient("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ev := func(n uint64) (string, string) {
		id := EventID("sinkrun", n)
		return id, `{"id": "` + id + `"}`
	}
	for _, n := range []uint64{0, 5, 5, 7} {
		id, body := ev(n)
		postDelivery(t, addr, id, "invoice.paid", body)
	}
	id, _ := ev(9)
	postDelivery(t, addr, id, "invoice.paid", `{"id": "evt_other"}`) // body of another event
	id, body := ev(10)
	postDelivery(t, addr, id, "", body) // no type
	postDelivery(t, addr, "evt_1QxAbCdEf", "invoice.paid", `{}`)
	id, body = ev(100000) // past MaxBytes
	postDelivery(t, addr, id, "invoice.paid", body)

	sum, err := c.Summary(ctx, "sinkrun")
	if err != nil {
		t.Fatal(err)
	}
	if sum.Deliveries != 7 || sum.Distinct != 5 || sum.Mismatched != 2 || sum.Overflow != 1 || sum.LastNew == 0 {
		t.Fatalf("summary %+v", sum)
	}
	counts, err := c.Counts(ctx, "sinkrun", "")
	if err != nil {
		t.Fatal(err)
	}
	if counts[0] != 1 || counts[5] != 2 || counts[7] != 1 || counts[1] != 0 {
		t.Fatalf("counts %v", counts[:11])
	}
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Deliveries != 8 || st.Foreign != 1 || len(st.ForeignSample) != 1 || st.Runs != 1 {
		t.Fatalf("stats %+v", st)
	}
	if err := c.Forget(ctx, "sinkrun"); err != nil {
		t.Fatal(err)
	}
	if sum, _ := c.Summary(ctx, "sinkrun"); sum.Deliveries != 0 {
		t.Fatalf("forgotten run still has %+v", sum)
	}
}

func TestSinkCountsEachDestinationApart(t *testing.T) {
	t.Parallel()
	s := NewSinkServer(SinkConfig{})
	addr := serveOnLoopback(t, s.Serve, s.Shutdown)
	c, err := NewSinkClient("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id := EventID("fanrun", 3)
	body := `{"id": "` + id + `"}`
	for _, path := range []string{"/a", "/b", "/b", "/c/", "/"} {
		postTo(t, addr, path, id, "invoice.paid", body)
	}
	sums, err := c.Summaries(ctx, "fanrun")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"": 1, "a": 1, "b": 2, "c": 1}
	if len(sums) != len(want) {
		t.Fatalf("summaries %+v, want destinations %v", sums, want)
	}
	for d, n := range want {
		if sums[d].Deliveries != n || sums[d].Distinct != 1 || sums[d].Dest != d {
			t.Fatalf("destination %q: %+v, want %d deliveries", d, sums[d], n)
		}
		counts, err := c.Counts(ctx, "fanrun", d)
		if err != nil || len(counts) < 4 || counts[3] != uint8(n) {
			t.Fatalf("destination %q counts: %v %v", d, err, counts[:min(len(counts), 4)])
		}
	}
	if sum, _ := c.Summary(ctx, "fanrun"); sum.Deliveries != 1 {
		t.Fatalf("summary of / %+v", sum)
	}
	if st, _ := c.Stats(ctx); st.Runs != 1 {
		t.Fatalf("stats %+v: want 1 run", st)
	}
	if err := c.Forget(ctx, "fanrun"); err != nil {
		t.Fatal(err)
	}
	if sums, _ := c.Summaries(ctx, "fanrun"); len(sums) != 0 {
		t.Fatalf("forgotten run still has %+v", sums)
	}
}
