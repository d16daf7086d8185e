package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// userAgent is what Stripe sends.
const userAgent = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"

// Retry backoff after a 5xx or a transport error. Stripe waits far longer;
// a benchmark only needs to see the event through.
const (
	retryFirst = 50 * time.Millisecond
	retryMax   = time.Second
)

// loader sends requests with fasthttp clients, one HostClient per URL,
// each with at most Connections connections. It records every attempt and
// retries a request answered 5xx or lost in transport, as Stripe does,
// for up to retryFor after its first failure.
type loader struct {
	ctx      context.Context
	uris     []string
	clients  []*fasthttp.HostClient
	signer   *Signer
	track    *tracker
	timeout  time.Duration
	retryFor time.Duration
}

func newLoader(ctx context.Context, urls []string, conns int, timeout, retryFor time.Duration, s *Signer, t *tracker) (*loader, error) {
	l := &loader{ctx: ctx, signer: s, track: t, timeout: timeout, retryFor: retryFor}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("url %q: want http://host:port/path", raw)
		}
		l.uris = append(l.uris, raw)
		l.clients = append(l.clients, &fasthttp.HostClient{
			Addr:                      u.Host,
			IsTLS:                     u.Scheme == "https",
			Name:                      userAgent,
			MaxConns:                  conns,
			MaxConnWaitTimeout:        timeout,
			ReadTimeout:               timeout,
			WriteTimeout:              timeout,
			MaxIdemponentCallAttempts: 1,
			// Every failure is seen and retried here, and counted.
			RetryIfErr: func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		})
	}
	return l, nil
}

// closedLoop runs workers that each send a batch and wait for its answers
// before taking the next, so conns requests are in flight at any time.
func (l *loader) closedLoop(src *source, conns int, rec *recorder) {
	workers := max(1, conns/src.copies)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for l.ctx.Err() == nil {
				b, ok := src.next(time.Now())
				if !ok {
					return
				}
				l.sendBatch(b, time.Now(), rec)
			}
		})
	}
	wg.Wait()
}

// openLoop starts a batch every copies/rate seconds whatever the answers,
// and measures each request from the moment it was due, so a slow receiver
// cannot hide its queueing (coordinated omission). At most maxInFlight
// batches wait at once; past that the schedule slips, and the slip counts
// as latency too.
func (l *loader) openLoop(src *source, rate float64, maxInFlight int, rec *recorder) {
	interval := time.Duration(float64(time.Second) * float64(src.copies) / rate)
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	start := time.Now()
	for i := int64(0); ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			select {
			case <-time.After(d):
			case <-l.ctx.Done():
			}
		}
		if l.ctx.Err() != nil {
			break
		}
		b, ok := src.next(due)
		if !ok {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			l.sendBatch(b, due, rec)
		})
	}
	wg.Wait()
}

// sendBatch sends a batch's requests at the same time and waits for all.
func (l *loader) sendBatch(b batch, due time.Time, rec *recorder) {
	if len(b) == 1 {
		l.send(b[0], due, rec)
		return
	}
	var wg sync.WaitGroup
	for _, r := range b[1:] {
		wg.Go(func() { l.send(r, due, rec) })
	}
	l.send(b[0], due, rec)
	wg.Wait()
}

// send makes one request, retrying after a 5xx or a transport error. The
// first attempt is measured from due, a retry from its own start.
func (l *loader) send(r request, due time.Time, rec *recorder) {
	st := l.track.at(r.n)
	backoff := retryFirst
	var firstFailure time.Time
	for attempt := 0; ; attempt++ {
		start := time.Now()
		o := l.do(r, start)
		end := time.Now()
		from := due
		if attempt > 0 {
			from = start
		}
		rec.record(o, end.Sub(from), attempt > 0, end)
		if attempt > 0 {
			st.retried.Add(1)
		}
		switch o {
		case outAccepted:
			st.accepted.Add(1)
			st.ok.Add(1)
		case outDuplicate, outOK:
			st.ok.Add(1)
		case out4xx:
			st.rejected.Add(1)
		}
		if o != out5xx && o != outError {
			return
		}
		if attempt == 0 {
			firstFailure = end
		}
		if end.Add(backoff).Sub(firstFailure) > l.retryFor {
			return
		}
		select {
		case <-time.After(backoff):
		case <-l.ctx.Done():
			return
		}
		backoff = min(2*backoff, retryMax)
	}
}

var (
	acceptedMark  = []byte(`"status":"accepted"`)
	duplicateMark = []byte(`"status":"duplicate"`)
)

func (l *loader) do(r request, now time.Time) outcome {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(l.uris[r.url])
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json; charset=utf-8")
	req.Header.Set("Stripe-Signature", r.payload.Header(l.signer, now))
	req.SetBodyRaw(r.payload.Body)
	if err := l.clients[r.url].DoTimeout(req, resp, l.timeout); err != nil {
		return outError
	}
	switch code := resp.StatusCode(); {
	case code >= 200 && code < 300: // success for Stripe
		body := resp.Body()
		if bytes.Contains(body, acceptedMark) {
			return outAccepted
		}
		if bytes.Contains(body, duplicateMark) {
			return outDuplicate
		}
		return outOK
	case code >= 500:
		return out5xx
	default:
		return out4xx // and any other answer: never retried, never a success
	}
}

// close drops the idle connections.
func (l *loader) close() {
	for _, c := range l.clients {
		c.CloseIdleConnections()
	}
}
