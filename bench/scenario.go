package bench

import (
	"bytes"
	"fmt"
	"sync"
	"time"
)

// The scenarios. Each sends signed events of the generator's mix.
const (
	// Floor sends the unique shape to the bare fasthttp server (cmd/bench
	// floor): the most this machine and load generator can do.
	Floor = "floor"
	// Unique sends every event once.
	Unique = "unique"
	// Fanout sends the unique load to a receiver with several destinations
	// (RunConfig.Destinations), each a path of the sink: every event must
	// reach every destination exactly once.
	Fanout = "fanout"
	// Storm sends each event Copies times (default 8), all at once.
	Storm = "storm"
	// Replay first accepts ReplaySet events in an unmeasured warm-up, waits
	// for their delivery, then sends them again: late duplicates.
	Replay = "replay"
	// Mixed sends new events and a BadShare (default 10%) of bad signatures,
	// stale timestamps and malformed bodies, which must be answered 400 and
	// never reach the sink.
	Mixed = "mixed"
	// Spread sends each event Copies times (default 2), at once, each copy to
	// another of the URLs, as a load balancer spreads Stripe's overlapping
	// deliveries over instances.
	Spread = "spread"
	// Hostile sends every event once while another address holds idle
	// connections, slow bodies and slow headers (see HostileConfig): every
	// event must still get 200, fast.
	Hostile = "hostile"
	// Ordered sends keyed events (OrderKeys objects, data.object.id) once
	// each to a receiver whose one destination, OrderedDestination, has
	// DESTINATION_O_ORDER_KEY=data.object.id: every event must reach it
	// exactly once and, per object, in created order.
	Ordered = "ordered"
	// Unordered is Ordered's load to the same destination without the
	// order key: Ordered's yardstick.
	Unordered = "unordered"
	// NATS is Unique's load to a receiver whose one destination publishes
	// to NATS JetStream (RunConfig.NATSURL): every event must be in the
	// stream exactly once (Nats-Msg-Id deduplicates resends).
	NATS = "nats"
	// RabbitMQ is Unique's load to a receiver whose one destination
	// publishes to a RabbitMQ exchange (RunConfig.AMQPURL): every event
	// must be in the queue at least once; duplicates are reported only.
	RabbitMQ = "rabbitmq"
)

// OrderKeys is how many objects Ordered and Unordered's events are about.
const OrderKeys = 1000

// OrderedDestination is the destination of Ordered and Unordered: the
// sink's path /o.
const OrderedDestination = "o"

// Scenarios lists them in the order of the standard suite.
var Scenarios = []string{Floor, Unique, Fanout, Storm, Replay, Mixed, Spread, Hostile, Unordered, Ordered, NATS, RabbitMQ}

func knownScenario(s string) bool {
	for _, k := range Scenarios {
		if s == k {
			return true
		}
	}
	return false
}

// defaultCopies is how many times Storm and Spread send each event.
func defaultCopies(scenario string) int {
	switch scenario {
	case Storm:
		return 8
	case Spread:
		return 2
	}
	return 1
}

// request is one HTTP request: a copy of event n to URL number url.
type request struct {
	n       uint64
	payload *Payload
	url     int
}

// batch is the requests sent at the same moment: one, or a storm's copies.
type batch []request

// source hands out the batches of one phase, until its count or deadline.
// It is safe for concurrent use.
type source struct {
	mu       sync.Mutex
	gen      *Generator
	track    *tracker
	copies   int
	urls     int    // URLs to spread copies over; 1 for all but Spread
	badCut   uint64 // a 0-9999 draw under it makes a bad request (Mixed)
	cycle    uint64 // > 0: resend events 0..cycle-1 (Replay)
	issued   uint64 // batches handed out
	limit    uint64 // 0: until the deadline
	deadline time.Time
}

// next returns the next batch, or false when the phase is over.
func (s *source) next(now time.Time) (batch, bool) {
	s.mu.Lock()
	i := s.issued
	if (s.limit > 0 && i >= s.limit) || (s.limit == 0 && !now.Before(s.deadline)) {
		s.mu.Unlock()
		return nil, false
	}
	var n uint64
	if s.cycle > 0 {
		n = i % s.cycle
	} else {
		n = i
		if !s.track.ensure(n) {
			s.mu.Unlock()
			return nil, false
		}
	}
	s.issued++
	s.mu.Unlock()

	p := s.payload(n)
	b := make(batch, s.copies)
	for j := range b {
		b[j] = request{n: n, payload: p, url: int((n + uint64(j)) % uint64(s.urls))}
	}
	return b, true
}

// events returns how many distinct events the source has handed out.
func (s *source) events() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cycle > 0 {
		return min(s.issued, s.cycle)
	}
	return s.issued
}

// kind says whether event n is sent as a valid event or a bad request.
func (s *source) kind(n uint64) Kind {
	return kindOf(n, s.gen.cfg.Seed, s.badCut)
}

func kindOf(n, seed, badCut uint64) Kind {
	h := mix(n ^ seed ^ 0x5bd1e995)
	if h%10000 >= badCut {
		return Valid
	}
	return Kind(1 + (h>>20)%3)
}

func (s *source) payload(n uint64) *Payload {
	ev := s.gen.Event(n)
	k := s.kind(n)
	if k == Malformed {
		return &Payload{Body: malform(ev.Body, n), Kind: k}
	}
	return &Payload{Body: ev.Body, Kind: k}
}

// malform breaks a body in one of two ways: cut in half (not JSON), or
// its top-level "type" renamed (JSON, but no type). Either keeps the id,
// so the sink would notice one that got through.
func malform(body []byte, n uint64) []byte {
	if n%2 == 0 {
		return body[:len(body)/2]
	}
	out := bytes.Clone(body)
	if i := bytes.Index(out, []byte("\n  \"type\":")); i >= 0 {
		copy(out[i+4:], "typo")
	}
	return out
}

// checkCopies validates a Copies value.
func checkCopies(c int) error {
	if c < 1 || c > 100 {
		return fmt.Errorf("copies %d: want 1 to 100", c)
	}
	return nil
}
