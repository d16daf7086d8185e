package bench

import (
	"context"
	"errors"
	"sync"
	"time"
)

// deliveries is where a verifier reads what reached a run's destinations:
// the HTTP sink (SinkClient), or a broker's stream or queue (brokerTally).
type deliveries interface {
	Summaries(ctx context.Context, run string) (map[string]RunSummary, error)
	Counts(ctx context.Context, run, dest string) ([]byte, error)
	Order(ctx context.Context, run, dest string) ([]uint32, error)
}

// brokerTally counts, per event id, the messages of one run read from a
// broker, as the sink counts its deliveries. Its one destination is "".
// It is safe for concurrent use.
type brokerTally struct {
	mu     sync.Mutex
	run    string
	counts []byte
	sum    RunSummary
}

// maxTallied bounds the events one run may tally.
const maxTallied = 1 << 26

func newBrokerTally(run string) *brokerTally {
	return &brokerTally{run: run, sum: RunSummary{Run: run}}
}

// add counts one message whose event id is id, read at (unix ns).
func (t *brokerTally) add(id []byte, at int64) {
	run, n, ok := ParseEventID(id)
	t.mu.Lock()
	defer t.mu.Unlock()
	if !ok || string(run) != t.run {
		if ok {
			return // another run's message, left on the broker before this one
		}
		t.sum.Mismatched++
		return
	}
	if n >= maxTallied {
		t.sum.Overflow++
		return
	}
	for uint64(len(t.counts)) <= n {
		t.counts = append(t.counts, make([]byte, max(1024, len(t.counts)))...)
	}
	t.sum.Deliveries++
	t.sum.Last = at
	if t.counts[n] == 0 {
		t.sum.Distinct++
		t.sum.LastNew = at
	}
	if t.counts[n] < 255 {
		t.counts[n]++
	}
}

// Summaries returns the run's one summary, at destination "".
func (t *brokerTally) Summaries(_ context.Context, run string) (map[string]RunSummary, error) {
	if run != t.run {
		return nil, errors.New("broker tally: asked for run " + run + ", tallying " + t.run)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return map[string]RunSummary{"": t.sum}, nil
}

// Counts returns a copy of the per-event counts.
func (t *brokerTally) Counts(_ context.Context, _, _ string) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.counts...), nil
}

// Order is not kept: no broker scenario checks order.
func (t *brokerTally) Order(context.Context, string, string) ([]uint32, error) {
	return nil, errors.New("broker tally: no order kept")
}

// brokerReader reads a broker's messages into a tally until closed.
type brokerReader interface {
	close()
}

// nowNS is a read time for brokers that give none.
func nowNS() int64 { return time.Now().UnixNano() }
