package dedup

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

func TestRecentIDsForgetAfterTTL(t *testing.T) {
	r := newRecentIDs(10, time.Hour)
	at := time.Unix(1_700_000_000, 0)
	r.add("evt_1", at)
	if !r.has([]byte("evt_1"), at.Add(59*time.Minute)) {
		t.Fatal("forgotten before its TTL")
	}
	if r.has([]byte("evt_1"), at.Add(time.Hour)) {
		t.Fatal("still counted at its TTL: it would outlive the row's done key")
	}
	if r.has([]byte("evt_2"), at) {
		t.Fatal("an id never added is known")
	}
}

func TestRecentIDsStayBounded(t *testing.T) {
	const max = 1000
	r := newRecentIDs(max, time.Hour)
	now := time.Now()
	for i := range 100 * max {
		r.add(fmt.Sprintf("evt_%d", i), now)
		if n := len(r.cur) + len(r.prev); n > max+1 {
			t.Fatalf("after %d adds it holds %d ids, over its bound %d", i+1, n, max)
		}
	}
	if !r.has(fmt.Appendf(nil, "evt_%d", 100*max-1), now) || !r.has(fmt.Appendf(nil, "evt_%d", 100*max-max/2), now) {
		t.Fatal("the newest ids were forgotten")
	}
	if r.has([]byte("evt_0"), now) {
		t.Fatal("the oldest id is still held")
	}
}

func TestRecentIDsOff(t *testing.T) {
	r := newRecentIDs(0, time.Hour)
	r.add("evt_1", time.Now())
	if r.has([]byte("evt_1"), time.Now()) {
		t.Fatal("RecentIDs 0 must keep nothing")
	}
}

// TestRecentIDsMemory checks the 100 bytes an id that the README and the
// receiver's memory bound count, with Stripe-sized ids.
func TestRecentIDsMemory(t *testing.T) {
	const max = 100_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := newRecentIDs(max, time.Hour)
	now := time.Now()
	for i := range 3 * max { // two full generations and the newer filling
		r.add(fmt.Sprintf("evt_1Nq%021d", i), now)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / max
	t.Logf("%.0f bytes per id held", per)
	if per > 100 {
		t.Fatalf("%.0f bytes per id, over the 100 counted", per)
	}
	runtime.KeepAlive(r)
}
