package pace

import (
	"sync"
	"time"
)

// localSchedule is reserveScript's schedule kept in this process: slots one
// interval apart, by the local clock.
type localSchedule struct {
	mu   sync.Mutex
	free time.Time // the next free slot
}

// reserve takes the next slot if it comes within maxWait and returns the
// wait for it; ok is false, and nothing reserved, when it comes later.
func (s *localSchedule) reserve(now time.Time, interval, maxWait time.Duration) (wait time.Duration, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	slot := s.free
	if slot.Before(now) {
		slot = now
	}
	wait = slot.Sub(now)
	if wait > maxWait {
		return wait, false
	}
	s.free = slot.Add(interval)
	return wait, true
}
