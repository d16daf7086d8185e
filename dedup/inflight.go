package dedup

import "sync"

// flight is one event id being decided in this process; later deliveries of
// the same id wait for its outcome instead of racing it.
type flight struct {
	done chan struct{}
	res  Result
	err  error
}

type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

// begin returns the flight for id and whether the caller leads it.
func (f *flights) begin(id string) (*flight, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl, ok := f.m[id]; ok {
		return fl, false
	}
	fl := &flight{done: make(chan struct{})}
	f.m[id] = fl
	return fl, true
}

// end publishes the leader's outcome and forgets the flight.
func (f *flights) end(id string, fl *flight, res Result, err error) {
	fl.res, fl.err = res, err
	f.mu.Lock()
	delete(f.m, id)
	f.mu.Unlock()
	close(fl.done)
}
