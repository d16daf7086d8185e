package bench

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// SinkConfig configures a SinkServer.
type SinkConfig struct {
	// MaxBytes bounds the per-event counters of all runs together (five
	// bytes per event: a count and an arrival rank). Deliveries past it are
	// counted as overflow, which fails the verification. Defaults to 256 MiB.
	MaxBytes int
}

// WithDefaults fills the zero fields.
func (c SinkConfig) WithDefaults() SinkConfig {
	if c.MaxBytes == 0 {
		c.MaxBytes = 256 << 20
	}
	return c
}

// foreignSampleSize bounds the sample of ids the sink could not place.
const foreignSampleSize = 20

// SinkServer is the downstream HTTP sink of a benchmark: it counts the
// deliveries of every event by its Idempotency-Key, which the receiver's
// HTTP sink sets to the event id, separately for each destination: the
// POST's path without its slashes ("" for /, "a" for /a).
//
//	POST /DEST                    a delivery to destination DEST; answered 200
//	GET  /runs/RUN                RunSummary of run RUN at destination "" (/), as JSON
//	GET  /runs/RUN/dests          a RunSummary per destination that got RUN, by Dest, as JSON
//	GET  /runs/RUN/counts?dest=D  the deliveries of events 0..n of RUN at D, one byte each (saturating at 255)
//	GET  /runs/RUN/order?dest=D   the arrival rank of each event's first delivery of RUN at D (1 for the
//	                              first to arrive; 0: never), 4 bytes little-endian each
//	DELETE /runs/RUN              forget RUN at every destination
//	GET  /stats                   SinkStats, as JSON
//	GET  /readyz, /healthz        200
//
// It is safe for concurrent use.
type SinkServer struct {
	cfg SinkConfig
	srv *fasthttp.Server

	mu    sync.Mutex
	runs  map[runDest]*sinkRun
	bytes int       // len of every run's counts
	stats SinkStats // Runs is filled in by Stats
}

// runDest keys the counters: one run at one destination.
type runDest struct{ run, dest string }

type sinkRun struct {
	counts []uint8
	first  []uint32 // arrival rank of each event's first delivery
	sum    RunSummary
}

// RunSummary is what the sink saw of one run at one destination.
type RunSummary struct {
	Run        string `json:"run"`
	Dest       string `json:"dest"`
	Deliveries uint64 `json:"deliveries"`
	Distinct   uint64 `json:"distinct"`
	// Mismatched deliveries had a body without their Idempotency-Key id,
	// or no Stripe-Event-Type.
	Mismatched uint64 `json:"mismatched"`
	// Overflow deliveries did not fit in SinkConfig.MaxBytes.
	Overflow uint64 `json:"overflow"`
	// LastNew is when an event was first delivered, for the last time
	// (unix ns); Last is the last delivery of any kind.
	LastNew int64 `json:"last_new_unix_ns"`
	Last    int64 `json:"last_unix_ns"`
}

// SinkStats counts the deliveries whose id is not a bench event id.
type SinkStats struct {
	Deliveries    uint64   `json:"deliveries"`
	Foreign       uint64   `json:"foreign"`
	ForeignSample []string `json:"foreign_sample"`
	Runs          int      `json:"runs"` // distinct runs held, over all destinations
}

// NewSinkServer returns a SinkServer; call Serve to start it.
func NewSinkServer(cfg SinkConfig) *SinkServer {
	s := &SinkServer{cfg: cfg.WithDefaults(), runs: map[runDest]*sinkRun{}}
	s.srv = &fasthttp.Server{
		Handler:            s.handle,
		Name:               "oncehook-bench-sink",
		MaxRequestBodySize: 4 << 20,
		IdleTimeout:        2 * time.Minute,
		NoDefaultDate:      true,
	}
	return s
}

// Serve serves on ln until Shutdown.
func (s *SinkServer) Serve(ln net.Listener) error { return s.srv.Serve(ln) }

// Shutdown stops the server.
func (s *SinkServer) Shutdown() error { return s.srv.Shutdown() }

func (s *SinkServer) handle(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	switch {
	case ctx.IsPost():
		s.deliver(strings.Trim(path, "/"), ctx.Request.Header.Peek("Idempotency-Key"), ctx.Request.Header.Peek("Stripe-Event-Type"), ctx.PostBody())
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"received":true}`)
	case path == "/readyz" || path == "/healthz":
		ctx.SetBodyString("ok")
	case path == "/stats" && ctx.IsGet():
		writeJSONBody(ctx, s.Stats())
	case strings.HasPrefix(path, "/runs/"):
		s.handleRun(ctx, strings.TrimPrefix(path, "/runs/"))
	default:
		ctx.SetStatusCode(fasthttp.StatusNotFound)
	}
}

func (s *SinkServer) handleRun(ctx *fasthttp.RequestCtx, rest string) {
	run, counts := strings.CutSuffix(rest, "/counts")
	run, dests := strings.CutSuffix(run, "/dests")
	run, order := strings.CutSuffix(run, "/order")
	switch {
	case ctx.IsGet() && order && !counts && !dests:
		ctx.SetContentType("application/octet-stream")
		ctx.SetBody(s.Order(run, string(ctx.QueryArgs().Peek("dest"))))
	case order:
		ctx.SetStatusCode(fasthttp.StatusMethodNotAllowed)
	case ctx.IsGet() && counts && !dests:
		ctx.SetContentType("application/octet-stream")
		ctx.SetBody(s.Counts(run, string(ctx.QueryArgs().Peek("dest"))))
	case ctx.IsGet() && dests && !counts:
		writeJSONBody(ctx, s.Summaries(run))
	case ctx.IsGet() && !counts && !dests:
		writeJSONBody(ctx, s.Summary(run))
	case ctx.IsDelete() && !counts && !dests:
		s.Forget(run)
	default:
		ctx.SetStatusCode(fasthttp.StatusMethodNotAllowed)
	}
}

func writeJSONBody(ctx *fasthttp.RequestCtx, v any) {
	b, _ := json.Marshal(v)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// deliver counts one delivery to dest.
func (s *SinkServer) deliver(dest string, id, typ, body []byte) {
	now := time.Now().UnixNano()
	run, n, ok := ParseEventID(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Deliveries++
	if !ok {
		s.stats.Foreign++
		if len(s.stats.ForeignSample) < foreignSampleSize {
			s.stats.ForeignSample = append(s.stats.ForeignSample, string(id))
		}
		return
	}
	key := runDest{string(run), dest}
	r := s.runs[key]
	if r == nil {
		r = &sinkRun{sum: RunSummary{Run: key.run, Dest: dest}}
		s.runs[key] = r
	}
	r.sum.Deliveries++
	r.sum.Last = now
	if len(typ) == 0 || !containsQuoted(body, id) {
		r.sum.Mismatched++
	}
	if n >= uint64(len(r.counts)) && !s.grow(r, n) {
		r.sum.Overflow++
		return
	}
	switch c := r.counts[n]; c {
	case 0:
		r.sum.Distinct++
		r.sum.LastNew = now
		r.counts[n] = 1
		r.first[n] = uint32(min(r.sum.Distinct, 1<<32-1))
	case 255:
	default:
		r.counts[n] = c + 1
	}
}

// grow makes r.counts and r.first hold event n, within MaxBytes (5
// bytes an event).
func (s *SinkServer) grow(r *sinkRun, n uint64) bool {
	want := max(n+1, uint64(2*len(r.counts)), 4096)
	if free := uint64(max(s.cfg.MaxBytes-s.bytes+5*len(r.counts), 0)) / 5; want > free {
		want = free
	}
	if n >= want {
		return false
	}
	grown := make([]uint8, want)
	copy(grown, r.counts)
	first := make([]uint32, want)
	copy(first, r.first)
	s.bytes += 5 * (len(grown) - len(r.counts))
	r.counts, r.first = grown, first
	return true
}

// containsQuoted reports whether body holds id as a JSON string.
func containsQuoted(body, id []byte) bool {
	for {
		i := bytes.Index(body, id)
		if i < 0 {
			return false
		}
		if i > 0 && body[i-1] == '"' && i+len(id) < len(body) && body[i+len(id)] == '"' {
			return true
		}
		body = body[i+1:]
	}
}

// Summary returns what the sink saw of run at destination "" (/).
func (s *SinkServer) Summary(run string) RunSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.runs[runDest{run, ""}]; r != nil {
		return r.sum
	}
	return RunSummary{Run: run}
}

// Summaries returns what the sink saw of run at each destination that got
// it, sorted by destination.
func (s *SinkServer) Summaries(run string) []RunSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []RunSummary{}
	for k, r := range s.runs {
		if k.run == run {
			out = append(out, r.sum)
		}
	}
	slices.SortFunc(out, func(a, b RunSummary) int { return cmp.Compare(a.Dest, b.Dest) })
	return out
}

// Counts returns a copy of run's per-event delivery counts at dest.
func (s *SinkServer) Counts(run, dest string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.runs[runDest{run, dest}]; r != nil {
		return bytes.Clone(r.counts)
	}
	return nil
}

// Order returns run's arrival ranks at dest (see SinkServer), 4 bytes
// little-endian per event.
func (s *SinkServer) Order(run, dest string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.runs[runDest{run, dest}]
	if r == nil {
		return nil
	}
	out := make([]byte, 4*len(r.first))
	for i, v := range r.first {
		binary.LittleEndian.PutUint32(out[4*i:], v)
	}
	return out
}

// Forget drops run's counters at every destination.
func (s *SinkServer) Forget(run string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, r := range s.runs {
		if k.run == run {
			s.bytes -= 5 * len(r.counts)
			delete(s.runs, k)
		}
	}
}

// Stats returns the totals over all runs.
func (s *SinkServer) Stats() SinkStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ForeignSample = append([]string(nil), st.ForeignSample...)
	runs := map[string]bool{}
	for k := range s.runs {
		runs[k.run] = true
	}
	st.Runs = len(runs)
	return st
}
