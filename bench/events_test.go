package bench

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/receiver"
)

func TestGeneratorEventsAreWhatTheReceiverAccepts(t *testing.T) {
	t.Parallel()
	gen, err := NewGenerator(GeneratorConfig{Run: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	v, err := receiver.NewVerifier([]string{testSecret}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	signer := NewSigner(testSecret)
	sizes := map[string][]int{}
	types := map[string]bool{}
	var nonASCII int
	const events = 2000
	for n := range uint64(events) {
		ev := gen.Event(n)
		if !bytes.Equal(ev.Body, gen.Event(n).Body) {
			t.Fatalf("event %d differs between calls", n)
		}
		if !bytes.HasPrefix(ev.Body, []byte("{\n  \"id\": \""+ev.ID+"\",\n")) {
			t.Fatalf("event %d is not pretty-printed with its id first:\n%.200s", n, ev.Body)
		}
		p := &Payload{Body: ev.Body}
		if err := v.Verify(ev.Body, p.Header(signer, time.Now())); err != nil {
			t.Fatalf("event %d: signature rejected: %v", n, err)
		}
		parsed, err := event.Parse(ev.Body)
		if err != nil {
			t.Fatalf("event %d rejected: %v\n%s", n, err, ev.Body)
		}
		if parsed.ID != ev.ID || parsed.Type != ev.Type {
			t.Fatalf("event %d parsed as %s %s, want %s %s", n, parsed.ID, parsed.Type, ev.ID, ev.Type)
		}
		kind := "snapshot"
		switch {
		case parsed.Thin:
			kind = "thin"
			if parsed.Account == "" || parsed.Created.IsZero() {
				t.Fatalf("thin event %d without account or created", n)
			}
		case len(ev.Body) > 16<<10:
			kind = "large"
		}
		sizes[kind] = append(sizes[kind], len(ev.Body))
		types[ev.Type] = true
		if utf8.RuneCount(ev.Body) < len(ev.Body) {
			nonASCII++
		}
	}
	share := func(kind string) float64 { return float64(len(sizes[kind])) / events }
	if s := share("large"); s < 0.03 || s > 0.07 {
		t.Errorf("large share %.3f, want about 0.05", s)
	}
	if s := share("thin"); s < 0.01 || s > 0.03 {
		t.Errorf("thin share %.3f, want about 0.02", s)
	}
	inRange := 0
	for _, size := range sizes["snapshot"] {
		if size >= 1<<10 && size <= 4<<10 {
			inRange++
		}
	}
	if float64(inRange) < 0.8*float64(len(sizes["snapshot"])) {
		t.Errorf("only %d of %d snapshot events are 1-4 KB", inRange, len(sizes["snapshot"]))
	}
	for _, typ := range []string{"payment_intent.succeeded", "invoice.paid", "charge.refunded", "customer.subscription.updated", "checkout.session.completed"} {
		if !types[typ] {
			t.Errorf("no %s event", typ)
		}
	}
	if nonASCII < events/2 {
		t.Errorf("only %d of %d events have non-ASCII text", nonASCII, events)
	}
}

// TestLargeInvoices checks the large share over many events of several
// seeds: invoice.paid, 30-80 KB, 100-250 lines, and the ends of both
// ranges come near.
func TestLargeInvoices(t *testing.T) {
	t.Parallel()
	minSize, maxSize, minLines, maxLines := 1<<30, 0, 1<<30, 0
	for seed := range uint64(2) {
		gen, err := NewGenerator(GeneratorConfig{Run: "t3", Seed: seed + 1})
		if err != nil {
			t.Fatal(err)
		}
		const events = 10000
		large := 0
		for n := range uint64(events) {
			ev := gen.Event(n)
			if len(ev.Body) <= 16<<10 {
				continue
			}
			large++
			lines := bytes.Count(ev.Body, []byte(`"object": "line_item"`))
			if ev.Type != "invoice.paid" || !bytes.Contains(ev.Body, []byte(fmt.Sprintf(`"total_count": %d,`, lines))) {
				t.Fatalf("large event %d: %s with %d lines and another total_count", n, ev.Type, lines)
			}
			if size := len(ev.Body); size < 30<<10 || size > 80<<10 {
				t.Errorf("large event %d of %d bytes, want 30-80 KB", n, size)
			}
			if lines < 100 || lines > 250 {
				t.Errorf("large event %d with %d lines, want 100-250", n, lines)
			}
			minSize, maxSize = min(minSize, len(ev.Body)), max(maxSize, len(ev.Body))
			minLines, maxLines = min(minLines, lines), max(maxLines, lines)
		}
		if s := float64(large) / events; s < 0.04 || s > 0.06 {
			t.Errorf("seed %d: large share %.3f, want about 0.05", seed+1, s)
		}
	}
	if minSize > 40<<10 || maxSize < 70<<10 || minLines > 120 || maxLines < 230 {
		t.Errorf("large events span %d-%d bytes and %d-%d lines: want most of 30-80 KB and 100-250 lines",
			minSize, maxSize, minLines, maxLines)
	}
}

func TestBadRequestsAreRejected(t *testing.T) {
	t.Parallel()
	gen, err := NewGenerator(GeneratorConfig{Run: "t2"})
	if err != nil {
		t.Fatal(err)
	}
	v, err := receiver.NewVerifier([]string{testSecret}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	src := &source{gen: gen, track: &tracker{}, badCut: 10000} // every request bad
	signer := NewSigner(testSecret)
	seen := map[Kind]int{}
	for n := range uint64(300) {
		p := src.payload(n)
		seen[p.Kind]++
		sigErr := v.Verify(p.Body, p.Header(signer, time.Now()))
		_, parseErr := event.Parse(p.Body)
		switch p.Kind {
		case BadSignature, StaleTimestamp:
			if !errors.Is(sigErr, receiver.ErrInvalidSignature) {
				t.Fatalf("%s request %d: signature accepted (%v)", p.Kind, n, sigErr)
			}
		case Malformed:
			if sigErr != nil || !errors.Is(parseErr, event.ErrInvalid) {
				t.Fatalf("malformed request %d: signature %v, parse %v", n, sigErr, parseErr)
			}
			if _, _, ok := ParseEventID([]byte(topLevel(p.Body, "id"))); !ok {
				t.Fatalf("malformed request %d lost its id", n)
			}
		default:
			t.Fatalf("request %d is %s", n, p.Kind)
		}
	}
	for _, k := range []Kind{BadSignature, StaleTimestamp, Malformed} {
		if seen[k] < 50 {
			t.Errorf("%d %s requests of 300", seen[k], k)
		}
	}
}

func TestKindShare(t *testing.T) {
	t.Parallel()
	bad := 0
	for n := range uint64(20000) {
		if kindOf(n, 1, 1000) != Valid {
			bad++
		}
	}
	if bad < 1800 || bad > 2200 {
		t.Fatalf("%d bad of 20000 at a 10%% share", bad)
	}
}

func TestEventIDRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		id  string
		run string
		n   uint64
		ok  bool
	}{
		{EventID("abc123", 0), "abc123", 0, true},
		{EventID("storm9x", 123456789), "storm9x", 123456789, true},
		{"evt_1QxAbC", "", 0, false},
		{"evt_bench_", "", 0, false},
		{"evt_bench_run_", "", 0, false},
		{"evt_bench_run_x1", "", 0, false},
	} {
		run, n, ok := ParseEventID([]byte(tc.id))
		if ok != tc.ok || string(run) != tc.run || n != tc.n {
			t.Errorf("ParseEventID(%q) = %q, %d, %v", tc.id, run, n, ok)
		}
	}
}

func TestPayloadSignatureIsCachedPerSecond(t *testing.T) {
	t.Parallel()
	s := NewSigner(testSecret + ",whsec_other")
	p := &Payload{Body: []byte(`{}`)}
	now := time.Unix(1_800_000_000, 0)
	a, b := p.Header(s, now), p.Header(s, now.Add(900*time.Millisecond))
	c := p.Header(s, now.Add(time.Second))
	if a != b || a == c {
		t.Fatalf("headers %q %q %q: want the first two equal and the third new", a, b, c)
	}
}
