package bench

import (
	"sync"
	"sync/atomic"
)

// Tracker chunks: 65,536 events each, up to 4,096 chunks (268M events).
const (
	chunkBits = 16
	chunkSize = 1 << chunkBits
	maxChunks = 1 << 12
	// maxEvents bounds the events of one run.
	maxEvents = chunkSize * maxChunks
)

// eventState is what the receiver answered for one event, over all its
// copies and retries.
type eventState struct {
	accepted atomic.Uint32 // 200 "accepted" answers
	ok       atomic.Uint32 // 200 answers of any kind
	rejected atomic.Uint32 // 4xx answers
	retried  atomic.Uint32 // attempts after a 5xx or a transport error
}

type trackChunk [chunkSize]eventState

// tracker holds an eventState per event n of a run, 16 bytes each,
// allocated a chunk at a time as n grows. It is safe for concurrent use.
type tracker struct {
	mu     sync.Mutex // serializes chunk allocation
	chunks [maxChunks]atomic.Pointer[trackChunk]
}

// ensure makes room for event n; false when n is past maxEvents.
func (t *tracker) ensure(n uint64) bool {
	if n >= maxEvents {
		return false
	}
	c := n >> chunkBits
	if t.chunks[c].Load() != nil {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.chunks[c].Load() == nil {
		t.chunks[c].Store(new(trackChunk))
	}
	return true
}

// at returns event n's state; ensure(n) must have returned true.
func (t *tracker) at(n uint64) *eventState {
	return &t.chunks[n>>chunkBits].Load()[n&(chunkSize-1)]
}
