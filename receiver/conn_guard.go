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
// cannot keep deliveries out; only when none is idle is the new one
// refused. fasthttp reports which connections are idle through ConnState.
type connGuard struct {
	max      int
	maxPerIP int              // 0: no bound
	tls      bool             // refusals get no plain-text answer
	refused  func(status int) // told of each refusal

	mu    sync.Mutex
	open  int
	peak  int
	idle  connList // oldest first
	perIP map[netip.Addr]int
}

// guardedConn is one connection the guard counts, from Accept to Close.
type guardedConn struct {
	net.Conn
	g          *connGuard
	ip         netip.Addr
	prev, next *guardedConn // in g.idle, under g.mu
	idle       bool         // under g.mu
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
	if g.open >= g.max {
		if victim = g.idle.head; victim == nil {
			g.mu.Unlock()
			g.refuse(c, fasthttp.StatusServiceUnavailable, fullRefusal)
			return nil
		}
		g.dropLocked(victim)
	}
	gc := &guardedConn{Conn: c, g: g, ip: ip, idle: true}
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

// shedOldest closes the connection idle longest, if any.
func (g *connGuard) shedOldest() {
	g.mu.Lock()
	victim := g.idle.head
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
	if c.idle {
		g.idle.remove(c)
		c.idle = false
	}
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
// accept to its first byte and between keep-alive requests.
func (g *connGuard) connState(nc net.Conn, st fasthttp.ConnState) {
	if st != fasthttp.StateActive && st != fasthttp.StateIdle {
		return // new connections start idle; Close does the rest
	}
	c, ok := nc.(*guardedConn)
	if !ok {
		if tc, isTLS := nc.(interface{ NetConn() net.Conn }); isTLS {
			c, ok = tc.NetConn().(*guardedConn)
		}
		if !ok {
			return
		}
	}
	idle := st == fasthttp.StateIdle
	g.mu.Lock()
	if !c.closed && c.idle != idle {
		if idle {
			g.idle.push(c)
		} else {
			g.idle.remove(c)
		}
		c.idle = idle
	}
	g.mu.Unlock()
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
