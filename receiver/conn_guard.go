package receiver

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// connGuard bounds a server's open connections. At the bound a new
// connection closes the one idle longest, so that sockets sending nothing
// cannot keep deliveries out; when none is idle, it closes the one that
// has been reading its request longest, if for more than readGrace (a
// slow-header or slow-body client); only when neither exists is the new
// one refused. fasthttp reports idle and reading through ConnState; the
// handler reports when a request is read (serving).
type connGuard struct {
	max      int
	maxPerIP int              // 0: no bound
	tls      bool             // refusals get no plain-text answer
	refused  func(status int) // told of each refusal

	mu      sync.Mutex
	open    int
	peak    int
	idle    connList // oldest first
	reading connList // oldest first
	perIP   map[netip.Addr]int
}

// readGrace is how long a request may take to arrive before its connection
// may be shed for a new one at the bound. A webhook arrives in
// milliseconds; a client sending a byte a second takes minutes.
const readGrace = time.Second

// Phases of a connection.
const (
	phaseIdle    = iota // nothing of a request yet
	phaseReading        // its request is arriving
	phaseServing        // its request is read and being handled
)

// guardedConn is one connection the guard counts, from Accept to Close.
type guardedConn struct {
	net.Conn
	g          *connGuard
	ip         netip.Addr
	prev, next *guardedConn // in g.idle or g.reading, under g.mu
	phase      int          // under g.mu
	since      time.Time    // start of the phase, under g.mu
	closed     bool         // under g.mu
}

func newConnGuard(maxConns, maxPerIP int, tls bool, refused func(status int)) *connGuard {
	return &connGuard{max: maxConns, maxPerIP: maxPerIP, tls: tls, refused: refused, perIP: map[netip.Addr]int{}}
}

// listener returns ln with Accept going through the guard.
func (g *connGuard) listener(ln net.Listener) net.Listener { return guardedListener{ln, g} }

type guardedListener struct {
	net.Listener
	g *connGuard
}

// Accept returns the next connection the guard admits. Running out of
// file descriptors is not fatal: an idle connection is closed and the
// accept retried.
func (l guardedListener) Accept() (net.Conn, error) {
	backoff := 5 * time.Millisecond
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) {
				return nil, err
			}
			l.g.shedOldest()
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if gc := l.g.admit(c); gc != nil {
			return gc, nil
		}
	}
}

// admit counts c in, closing the oldest idle connection at the bound, or
// refuses it and returns nil.
func (g *connGuard) admit(c net.Conn) *guardedConn {
	var ip netip.Addr
	if g.maxPerIP > 0 {
		if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			ip = a.AddrPort().Addr().Unmap()
		}
	}
	g.mu.Lock()
	if g.maxPerIP > 0 && g.perIP[ip] >= g.maxPerIP {
		g.mu.Unlock()
		g.refuse(c, fasthttp.StatusTooManyRequests, perIPRefusal)
		return nil
	}
	var victim *guardedConn
	now := time.Now()
	if g.open >= g.max {
		if victim = g.victimLocked(now); victim == nil {
			g.mu.Unlock()
			g.refuse(c, fasthttp.StatusServiceUnavailable, fullRefusal)
			return nil
		}
		g.dropLocked(victim)
	}
	gc := &guardedConn{Conn: c, g: g, ip: ip, phase: phaseIdle, since: now}
	g.open++
	g.peak = max(g.peak, g.open)
	if g.maxPerIP > 0 {
		g.perIP[ip]++
	}
	g.idle.push(gc)
	g.mu.Unlock()
	if victim != nil {
		_ = victim.Conn.Close()
	}
	return gc
}

// victimLocked is the connection to shed for a new one: the one idle
// longest, else the one reading longest if for more than readGrace.
func (g *connGuard) victimLocked(now time.Time) *guardedConn {
	if g.idle.head != nil {
		return g.idle.head
	}
	if r := g.reading.head; r != nil && now.Sub(r.since) > readGrace {
		return r
	}
	return nil
}

// shedOldest closes the connection victimLocked names, if any.
func (g *connGuard) shedOldest() {
	g.mu.Lock()
	victim := g.victimLocked(time.Now())
	if victim != nil {
		g.dropLocked(victim)
	}
	g.mu.Unlock()
	if victim != nil {
		_ = victim.Conn.Close()
	}
}

// dropLocked stops counting c.
func (g *connGuard) dropLocked(c *guardedConn) {
	if c.closed {
		return
	}
	c.closed = true
	g.unlistLocked(c)
	g.open--
	if g.maxPerIP > 0 {
		if g.perIP[c.ip]--; g.perIP[c.ip] <= 0 {
			delete(g.perIP, c.ip)
		}
	}
}

func (c *guardedConn) Close() error {
	c.g.mu.Lock()
	c.g.dropLocked(c)
	c.g.mu.Unlock()
	return c.Conn.Close()
}

// connState is fasthttp's ConnState hook: a connection is idle from its
// accept to its first byte and between keep-alive requests, and reading
// from its first byte until the handler says its request is read.
func (g *connGuard) connState(nc net.Conn, st fasthttp.ConnState) {
	switch st {
	case fasthttp.StateIdle:
		g.enter(nc, phaseIdle)
	case fasthttp.StateActive:
		g.enter(nc, phaseReading)
	}
}

// served marks nc's request as read: it is no longer shed at the bound.
func (g *connGuard) served(nc net.Conn) { g.enter(nc, phaseServing) }

func (g *connGuard) enter(nc net.Conn, phase int) {
	c, ok := nc.(*guardedConn)
	if !ok {
		if tc, isTLS := nc.(interface{ NetConn() net.Conn }); isTLS {
			c, ok = tc.NetConn().(*guardedConn)
		}
		if !ok {
			return
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if c.closed || c.phase == phase {
		return
	}
	g.unlistLocked(c)
	c.phase, c.since = phase, time.Now()
	switch phase {
	case phaseIdle:
		g.idle.push(c)
	case phaseReading:
		g.reading.push(c)
	}
}

// unlistLocked takes c out of the list of its phase.
func (g *connGuard) unlistLocked(c *guardedConn) {
	switch c.phase {
	case phaseIdle:
		g.idle.remove(c)
	case phaseReading:
		g.reading.remove(c)
	}
}

// counts returns the open connections, the idle ones among them, and the
// most that were open at once.
func (g *connGuard) counts() (open, idle, peak int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open, g.idle.n, g.peak
}

var (
	fullRefusal  = refusal(fasthttp.StatusServiceUnavailable, "receiver is at its connection bound; retry")
	perIPRefusal = refusal(fasthttp.StatusTooManyRequests, "too many connections from this address")
)

func refusal(code int, msg string) string {
	body := fmt.Sprintf(`{"error":%q}`, msg)
	return fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		code, fasthttp.StatusMessage(code), len(body), body)
}

// refuse answers c, unless it speaks TLS, and closes it.
func (g *connGuard) refuse(c net.Conn, status int, answer string) {
	if !g.tls {
		_ = c.SetWriteDeadline(time.Now().Add(time.Second)) // a fresh socket's buffer takes it at once
		_, _ = io.WriteString(c, answer)
	}
	_ = c.Close()
	if g.refused != nil {
		g.refused(status)
	}
}

// connList is a doubly linked list of connections.
type connList struct {
	head, tail *guardedConn
	n          int
}

func (l *connList) push(c *guardedConn) {
	l.n++
	c.prev, c.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = c
	} else {
		l.head = c
	}
	l.tail = c
}

func (l *connList) remove(c *guardedConn) {
	l.n--
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		l.tail = c.prev
	}
	c.prev, c.next = nil, nil
}
