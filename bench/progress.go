package bench

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// startProgress adds a Second to timeline every second, and prints it to
// w (if not nil), until stop is called; stop adds the last part-second.
// timeline must not be read before stop returns.
func startProgress(name string, rec *recorder, w io.Writer, timeline *[]Second) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	prev := start
	tick := func(now time.Time, partial bool) {
		c, p99 := rec.tick()
		dt := now.Sub(prev).Seconds()
		prev = now
		if partial && (c.Requests == 0 || dt < 0.2) {
			return
		}
		s := Second{At: now, RPS: float64(c.Requests) / dt, P99: p99, Errors: c.Status5xx + c.Errors}
		*timeline = append(*timeline, s)
		if w != nil {
			fmt.Fprintf(w, "%-14s %5.1fs %9.0f req/s  p99 %8.2f ms  4xx %d  5xx %d  errors %d  retries %d\n",
				name, now.Sub(start).Seconds(), s.RPS, s.P99, c.Status4xx, c.Status5xx, c.Errors, c.Retries)
		}
	}
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				tick(now, false)
			case <-done:
				tick(time.Now(), true)
				return
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}
