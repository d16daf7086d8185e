package bench

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to 5 minutes, with 3
// significant digits (HdrHistogram: a 0.1% error at any value).
const (
	histMin = 1
	histMax = int64(5 * time.Minute / time.Microsecond)
	histSig = 3
)

func newHistogram() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histSig) }

// Latency is a latency distribution in milliseconds.
type Latency struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

func summarize(h *hdrhistogram.Histogram) Latency {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{
		P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)),
		P99: ms(h.ValueAtQuantile(99)), P999: ms(h.ValueAtQuantile(99.9)),
		Max: ms(h.Max()), Mean: h.Mean() / 1000,
	}
}

// outcome is how one request attempt ended.
type outcome uint8

const (
	outAccepted  outcome = iota // 200 {"status":"accepted"}
	outDuplicate                // 200 {"status":"duplicate"}
	outOK                       // another 200 (the floor's)
	out4xx
	out5xx
	outError // transport error or timeout
)

// Counts are the answers to the requests of a run. Requests counts every
// attempt; Retries the attempts after a 5xx or a transport error.
type Counts struct {
	Requests  int64 `json:"requests"`
	Accepted  int64 `json:"accepted"`
	Duplicate int64 `json:"duplicate"`
	OtherOK   int64 `json:"other_200"`
	Status4xx int64 `json:"status_4xx"`
	Status5xx int64 `json:"status_5xx"`
	Errors    int64 `json:"errors"`
	Retries   int64 `json:"retries"`
}

func (c *Counts) add(o outcome, retry bool) {
	c.Requests++
	if retry {
		c.Retries++
	}
	switch o {
	case outAccepted:
		c.Accepted++
	case outDuplicate:
		c.Duplicate++
	case outOK:
		c.OtherOK++
	case out4xx:
		c.Status4xx++
	case out5xx:
		c.Status5xx++
	case outError:
		c.Errors++
	}
}

// recorder gathers latencies and counts for the whole run and for the
// current one-second window. It is safe for concurrent use; one mutex is
// cheap next to an HTTP round trip.
type recorder struct {
	mu            sync.Mutex
	total, window *hdrhistogram.Histogram
	counts, wc    Counts
	last          time.Time // when the last answer came
}

func newRecorder() *recorder {
	return &recorder{total: newHistogram(), window: newHistogram()}
}

func (r *recorder) record(o outcome, latency time.Duration, retry bool, at time.Time) {
	us := min(max(latency.Microseconds(), histMin), histMax)
	r.mu.Lock()
	_ = r.total.RecordValue(us) // in range: clamped above
	_ = r.window.RecordValue(us)
	r.counts.add(o, retry)
	r.wc.add(o, retry)
	if at.After(r.last) {
		r.last = at
	}
	r.mu.Unlock()
}

// tick returns the window's counts and p99 and starts a new window.
func (r *recorder) tick() (Counts, float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, p99 := r.wc, float64(r.window.ValueAtQuantile(99))/1000
	r.wc = Counts{}
	r.window.Reset()
	return c, p99
}

func (r *recorder) result() (Counts, Latency, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts, summarize(r.total), r.last
}
