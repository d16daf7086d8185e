package dedup

import (
	"strings"
	"sync"
	"time"
)

// recentIDs remembers the event ids this process stored, for as long as
// Redis keeps their "done" key, so that a copy arriving soon after (a
// storm, a quick retry) is answered without a round trip. Only ids whose
// row this process committed go in: their commit time is known, so none
// is remembered past the row's DoneTTL. It holds about max ids, in two
// generations: when the newer fills, the older is dropped whole.
type recentIDs struct {
	mu        sync.RWMutex
	cur, prev map[string]time.Duration // id -> when it stops counting, on the monotonic clock since base
	base      time.Time
	half      int
	ttl       time.Duration
}

// newRecentIDs returns nil (remember nothing) when max is 0.
func newRecentIDs(max int, ttl time.Duration) *recentIDs {
	if max < 1 {
		return nil
	}
	return &recentIDs{cur: map[string]time.Duration{}, prev: map[string]time.Duration{}, base: time.Now(), half: (max + 1) / 2, ttl: ttl}
}

// add remembers id, committed no earlier than now.
func (r *recentIDs) add(id string, now time.Time) {
	if r == nil {
		return
	}
	until := now.Sub(r.base) + r.ttl
	r.mu.Lock()
	if len(r.cur) >= r.half {
		r.prev, r.cur = r.cur, make(map[string]time.Duration, r.half)
	}
	r.cur[strings.Clone(id)] = until // not the rest of the string id shares
	r.mu.Unlock()
}

// has reports whether id was stored by this process and still counts.
func (r *recentIDs) has(id []byte, now time.Time) bool {
	if r == nil {
		return false
	}
	r.mu.RLock()
	until, ok := r.cur[string(id)] // no copy: the compiler looks up the bytes
	if !ok {
		until, ok = r.prev[string(id)]
	}
	r.mu.RUnlock()
	return ok && now.Sub(r.base) < until
}

// forget drops every id remembered.
func (r *recentIDs) forget() {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.cur, r.prev = make(map[string]time.Duration, r.half), map[string]time.Duration{}
	r.mu.Unlock()
}
