package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// HostileConfig is the attack the Hostile scenario holds while it sends
// signed events: connections that send nothing, bodies sent a byte a
// second, and headers sent a byte a second (issue item 8). Zero fields
// take the defaults; a negative one means none.
type HostileConfig struct {
	Idle        int // defaults to 3,000
	SlowBodies  int // defaults to 200
	SlowHeaders int // defaults to 500
}

func (c HostileConfig) withDefaults() HostileConfig {
	def := func(v, d int) int {
		switch {
		case v == 0:
			return d
		case v < 0:
			return 0
		}
		return v
	}
	return HostileConfig{Idle: def(c.Idle, 3000), SlowBodies: def(c.SlowBodies, 200), SlowHeaders: def(c.SlowHeaders, 500)}
}

// HostileStats is what the attack did during a run.
type HostileStats struct {
	Idle        int   `json:"idle"`
	SlowBodies  int   `json:"slow_bodies"`
	SlowHeaders int   `json:"slow_headers"`
	Held        int64 `json:"held"`       // attack connections open when the measured phase began
	Reconnects  int64 `json:"reconnects"` // connections opened again after the receiver cut or refused one
	DialErrors  int64 `json:"dial_errors"`
}

// attack runs one goroutine per attacking connection; each reconnects
// when the receiver cuts it, until stop.
type attack struct {
	stats  HostileStats
	held   atomic.Int64
	again  atomic.Int64
	failed atomic.Int64
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// slowBodyHead declares a body of 1 MB, under the default MAX_BODY_BYTES.
const slowBodyHead = "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nStripe-Signature: t=1,v1=00\r\nContent-Length: 1000000\r\n\r\n"

// startAttack opens the attack's connections to target (a webhook URL)
// and returns once each has connected once, or after wait.
func startAttack(ctx context.Context, target string, cfg HostileConfig, wait time.Duration) (*attack, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	a := &attack{stats: HostileStats{Idle: cfg.Idle, SlowBodies: cfg.SlowBodies, SlowHeaders: cfg.SlowHeaders}}
	ctx, a.cancel = context.WithCancel(ctx)
	d := net.Dialer{Timeout: 10 * time.Second}
	if host := u.Hostname(); host == "127.0.0.1" || host == "localhost" {
		// Another source address: the attack is not the load generator's
		// client, and has ephemeral ports of its own.
		d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}
	}
	path := u.RequestURI()
	slowHead := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nX-Slow: ", path, u.Host)
	bodyHead := fmt.Sprintf(slowBodyHead, path, u.Host)
	var connected sync.WaitGroup
	run := func(head, trickle string) {
		connected.Add(1)
		a.wg.Go(func() {
			first := true
			for ctx.Err() == nil {
				c, err := d.DialContext(ctx, "tcp", u.Host)
				if err != nil {
					a.failed.Add(1)
					sleepCtx(ctx, 100*time.Millisecond)
					continue
				}
				if first {
					first = false
					a.held.Add(1)
					connected.Done()
				} else {
					a.again.Add(1)
				}
				hold(ctx, c, head, trickle)
				_ = c.Close()
				sleepCtx(ctx, 50*time.Millisecond)
			}
			if first {
				connected.Done()
			}
		})
	}
	for range cfg.Idle {
		run("", "")
	}
	for range cfg.SlowBodies {
		run(bodyHead, `{"id":"evt_slow","object":"event","type":"invoice.paid"`)
	}
	for range cfg.SlowHeaders {
		run(slowHead[:1], slowHead[1:])
	}
	done := make(chan struct{})
	go func() { connected.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
	case <-ctx.Done():
	}
	a.stats.Held = a.held.Load()
	return a, nil
}

// hold keeps c busy as one attacker: it sends head at once, then trickle a
// byte a second (and 'a' once trickle is spent), until the receiver cuts c
// or ctx ends. Empty both: an idle connection.
func hold(ctx context.Context, c net.Conn, head, trickle string) {
	cut := make(chan struct{})
	go func() { // the receiver cutting c ends this read
		_, _ = io.Copy(io.Discard, c)
		close(cut)
	}()
	defer func() {
		_ = c.Close()
		<-cut
	}()
	if head != "" {
		if _, err := io.WriteString(c, head); err != nil {
			return
		}
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for sent := 0; ; {
		select {
		case <-ctx.Done():
			return
		case <-cut:
			return
		case <-t.C:
			if head == "" {
				continue
			}
			b := "a"
			if sent < len(trickle) {
				b = trickle[sent : sent+1]
			}
			if _, err := io.WriteString(c, b); err != nil {
				return
			}
			sent++
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// stop ends the attack and returns what it did.
func (a *attack) stop() HostileStats {
	a.cancel()
	a.wg.Wait()
	a.stats.Reconnects = a.again.Load()
	a.stats.DialErrors = a.failed.Load()
	return a.stats
}
