package receiver

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"
	"github.com/valyala/fasthttp"

	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/testenv"
)

// guardedListen serves a guard's listener on 127.0.0.1 and returns a dial
// function: it returns the client end of a new connection, and the server
// end, or nil when the guard refused it.
func guardedListen(t *testing.T, g *connGuard) func(from string) (net.Conn, *guardedConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := g.listener(ln)
	t.Cleanup(func() { l.Close() })
	accepted := make(chan net.Conn)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			accepted <- c
		}
	}()
	return func(from string) (net.Conn, *guardedConn) {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		select {
		case sc := <-accepted:
			return c, sc.(*guardedConn)
		case <-time.After(200 * time.Millisecond):
			return c, nil // refused
		}
	}
}

// answer reads what the server sent c before closing it: a status code,
// or 0 for none.
func answer(t *testing.T, c net.Conn) int {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func closedByServer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.Read(make([]byte, 1))
	return err == io.EOF
}

func TestConnGuardShedsOldestIdle(t *testing.T) {
	t.Parallel()
	var refusals []int
	g := newConnGuard(3, 0, false, func(status int) { refusals = append(refusals, status) })
	dial := guardedListen(t, g)
	c1, s1 := dial("127.0.0.1")
	c2, s2 := dial("127.0.0.1")
	_, s3 := dial("127.0.0.1")
	g.connState(s1, fasthttp.StateActive) // c1 is reading a request: not shed within readGrace
	if open, idle, _ := g.counts(); open != 3 || idle != 2 {
		t.Fatalf("open %d, idle %d; want 3 and 2", open, idle)
	}
	_, s4 := dial("127.0.0.1")
	if s4 == nil || !closedByServer(c2) {
		t.Fatal("at the bound, a new connection was not admitted in place of the oldest idle one")
	}
	g.connState(s3, fasthttp.StateActive)
	g.connState(s4, fasthttp.StateActive)
	c5, s5 := dial("127.0.0.1")
	if s5 != nil {
		t.Fatal("admitted a connection with every one busy")
	}
	if code := answer(t, c5); code != 503 {
		t.Fatalf("refused connection got %d, want 503", code)
	}
	g.connState(s1, fasthttp.StateIdle) // c1's request is answered
	_, s6 := dial("127.0.0.1")
	if s6 == nil || !closedByServer(c1) {
		t.Fatal("a keep-alive connection idle again was not shed")
	}
	_ = s2.Close() // closing twice, as fasthttp does after a shed, counts once
	if open, idle, peak := g.counts(); open != 3 || idle != 1 || peak != 3 {
		t.Fatalf("open %d, idle %d, peak %d; want 3, 1, 3", open, idle, peak)
	}
	if fmt.Sprint(refusals) != "[503]" {
		t.Fatalf("refusals %v, want [503]", refusals)
	}
}

func TestConnGuardPerIP(t *testing.T) {
	t.Parallel()
	g := newConnGuard(100, 2, false, nil)
	dial := guardedListen(t, g)
	_, a1 := dial("127.0.0.2")
	_, a2 := dial("127.0.0.2")
	c3, a3 := dial("127.0.0.2")
	if a1 == nil || a2 == nil || a3 != nil {
		t.Fatal("want two connections from 127.0.0.2 admitted and the third refused")
	}
	if code := answer(t, c3); code != 429 {
		t.Fatalf("third connection from one address got %d, want 429", code)
	}
	if _, b := dial("127.0.0.3"); b == nil {
		t.Fatal("another address was refused")
	}
	_ = a1.Close()
	if _, a4 := dial("127.0.0.2"); a4 == nil {
		t.Fatal("a closed connection still counts against its address")
	}
}

// TestConnGuardSeesThroughTLS: with TLS, fasthttp reports the *tls.Conn.
func TestConnGuardSeesThroughTLS(t *testing.T) {
	t.Parallel()
	g := newConnGuard(10, 0, true, nil)
	_, s := guardedListen(t, g)("127.0.0.1")
	g.connState(tls.Server(s, &tls.Config{}), fasthttp.StateActive)
	if _, idle, _ := g.counts(); idle != 0 {
		t.Fatal("a TLS connection's state did not reach the guard")
	}
}

// emfileListener fails its first Accept as a process out of file
// descriptors does.
type emfileListener struct {
	net.Listener
	failed atomic.Bool
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if !l.failed.Swap(true) {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestConnGuardOutOfFiles: running out of file descriptors sheds an idle
// connection and accepts on; it does not end Serve, as fasthttp would.
func TestConnGuardOutOfFiles(t *testing.T) {
	t.Parallel()
	g := newConnGuard(10, 0, false, nil)
	dial := guardedListen(t, g)
	c1, _ := dial("127.0.0.1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := g.listener(&emfileListener{Listener: ln})
	defer l.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept after EMFILE: %v", err)
	}
	c.Close()
	if !closedByServer(c1) {
		t.Fatal("no idle connection was shed to free a file descriptor")
	}
}

// startServer serves a Server on a fresh schema at 127.0.0.1 until the
// test ends, and returns it with its address and Serve's result.
func startServer(t *testing.T, tune func(*Config)) (*Server, string, <-chan error) {
	t.Helper()
	s := newTestServer(t, testenv.Postgres(t), tune)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s, ln.Addr().String(), served
}

// postSigned sends a new signed event on a fresh connection and returns
// the status code.
func postSigned(t *testing.T, addr, id string) int {
	t.Helper()
	body := fmt.Appendf(nil, `{"id":%q,"object":"event","type":"invoice.paid","created":%d,"livemode":false,"data":{"object":{"id":"in_1"}}}`, id, time.Now().Unix())
	sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secretA}).Header
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + addr + WebhookPath)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.Set("Stripe-Signature", sig)
	req.Header.SetConnectionClose()
	req.SetBody(body)
	if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil {
		t.Errorf("posting %s: %v", id, err)
		return 0
	}
	if resp.StatusCode() != 200 {
		t.Logf("%s: %d %s", id, resp.StatusCode(), resp.Body())
	}
	return resp.StatusCode()
}

func TestStreamedBodiesOnTheWire(t *testing.T) {
	t.Parallel()
	s, addr, _ := startServer(t, func(c *Config) { c.MaxBodyBytes = 64 << 10 })
	body := fmt.Appendf(nil, `{"id":"evt_chunked","object":"event","type":"invoice.paid","created":%d,"livemode":false}`, time.Now().Unix())
	sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secretA}).Header
	exchange := func(req string) (int, string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, req)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	chunk := func(b []byte) string { return fmt.Sprintf("%x\r\n%s\r\n", len(b), b) }
	head := "POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nStripe-Signature: " + sig + "\r\n"

	if code, b := exchange(head + "Transfer-Encoding: chunked\r\n\r\n" + chunk(body[:10]) + chunk(body[10:]) + "0\r\n\r\n"); code != 200 || !strings.Contains(b, "accepted") {
		t.Errorf("chunked event: %d %s", code, b)
	}
	big := strings.Repeat("a", 40<<10)
	if code, b := exchange(head + "Transfer-Encoding: chunked\r\n\r\n" + chunk([]byte(big)) + chunk([]byte(big)) + "0\r\n\r\n"); code != 413 || !strings.Contains(b, "MAX_BODY_BYTES") {
		t.Errorf("chunked body over MaxBodyBytes: %d %s, want 413", code, b)
	}
	if code, b := exchange(head + "Expect: 100-continue\r\nContent-Length: 1000000\r\n\r\n"); code != 413 || !strings.Contains(b, "MAX_BODY_BYTES") {
		t.Errorf("100-continue over MaxBodyBytes: %d %s, want 413 before the body", code, b)
	}
	if code, b := exchange("POST /webhooks/stripe HTTP/1.0\r\nContent-Length: 1000000\r\n\r\n" + big[:9000]); code != 413 {
		t.Errorf("HTTP/1.0 over MaxBodyBytes: %d %s, want 413", code, b)
	}
	if u := s.budget.used.Load(); u != 0 {
		t.Errorf("%d bytes of the body budget still charged", u)
	}
}

// TestIdleConnHelper is not a test: TestTwentyThousandIdleConnections runs
// it in child processes, which hold idle connections with file descriptors
// of their own until their stdin closes.
func TestIdleConnHelper(t *testing.T) {
	spec := os.Getenv("ONCEHOOK_IDLE_CONNS") // addr,count,first source octet
	if spec == "" {
		return
	}
	var addr string
	var n, first int
	if _, err := fmt.Sscanf(strings.ReplaceAll(spec, ",", " "), "%s %d %d", &addr, &n, &first); err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, n)
	var failed atomic.Int64
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 32 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				// Sources spread over 127.<first>.0.1-200: each address
				// has its own ephemeral ports.
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, byte(first), 0, byte(1+i%200))}, Timeout: 10 * time.Second}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					failed.Add(1)
					continue
				}
				conns <- c
			}
		})
	}
	wg.Wait()
	fmt.Printf("held %d failed %d\n", len(conns), failed.Load())
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// TestTwentyThousandIdleConnections holds 20,000 connections that send
// nothing, twice MaxConns, and checks that the receiver keeps serving,
// never counts more than MaxConns, leaves fasthttp's own bound alone, and
// stays inside its memory bound.
func TestTwentyThousandIdleConnections(t *testing.T) {
	// Not parallel: it measures the process's memory.
	const idleConns = 20000
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur < rl.Max { // Go raises it at start; in case it did not
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	s, addr, served := startServer(t, nil) // MaxConns at its default
	maxConns := s.cfg.MaxConns
	if need := uint64(maxConns + 2000); rl.Cur < need {
		t.Fatalf("RLIMIT_NOFILE is %d: this test holds %d connections in this process and needs %d; raise the hard limit (ulimit -Hn)", rl.Cur, maxConns, need)
	}
	perHelper := min(idleConns, int(rl.Cur)-200)

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	goroutinesBefore := runtime.NumGoroutine()

	var helpers []*exec.Cmd
	var outs []*bufio.Reader
	for h, left := 0, idleConns; left > 0; h++ {
		n := min(left, perHelper)
		left -= n
		cmd := exec.Command(os.Args[0], "-test.run=^TestIdleConnHelper$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("ONCEHOOK_IDLE_CONNS=%s,%d,%d", addr, n, 10+h))
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stdin.Close(); _ = cmd.Wait() }) // closes its connections before the server stops
		helpers = append(helpers, cmd)
		outs = append(outs, bufio.NewReader(stdout))
	}
	held := 0
	for _, out := range outs {
		line, err := out.ReadString('\n')
		if err != nil {
			t.Fatalf("helper: %v", err)
		}
		var n, failed int
		if _, err := fmt.Sscanf(line, "held %d failed %d", &n, &failed); err != nil || failed > 0 {
			t.Fatalf("helper: %q", line)
		}
		held += n
	}
	if held != idleConns {
		t.Fatalf("%d idle connections held, want %d", held, idleConns)
	}
	// Every connection was accepted once the server counts MaxConns: the
	// newest ones, each admitted in place of an older one.
	eventually.Within(30*time.Second, func() bool { open, _, _ := s.guard.counts(); return open == maxConns })

	start := time.Now()
	for i := range 5 {
		if code := postSigned(t, addr, fmt.Sprintf("evt_idle_flood_%d", i)); code != 200 {
			t.Errorf("signed delivery %d while %d idle connections are held: %d, want 200", i, idleConns, code)
		}
	}
	took := time.Since(start) / 5

	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	open, idle, peak := s.guard.counts()
	grown := int64(after.HeapInuse+after.StackInuse) - int64(before.HeapInuse+before.StackInuse)
	t.Logf("%d idle connections: %d open (%d idle), peak %d; fasthttp: %d open, %d refused; %d goroutines more; heap+stacks grew %.1f MiB, %.0f bytes a connection; a signed delivery took %s",
		idleConns, open, idle, peak, s.srv.GetOpenConnectionsCount(), s.srv.GetRejectedConnectionsCount(),
		runtime.NumGoroutine()-goroutinesBefore, float64(grown)/(1<<20), float64(grown)/float64(open), took)
	select {
	case err := <-served:
		t.Fatalf("Serve returned: %v", err)
	default:
	}
	if peak > maxConns || open > maxConns {
		t.Errorf("the guard counted %d connections at once (now %d), more than MaxConns %d", peak, open, maxConns)
	}
	if open < maxConns-10 {
		t.Errorf("%d connections open, want about MaxConns %d: idle ones were not held up to the bound", open, maxConns)
	}
	if n := s.srv.GetRejectedConnectionsCount(); n != 0 {
		t.Errorf("fasthttp refused %d connections itself: its Concurrency bound fired before the guard's", n)
	}
	// A goroutine a connection, and fasthttp's idle workers, within its
	// Concurrency of 2 × MaxConns.
	if g := runtime.NumGoroutine() - goroutinesBefore; g > 2*maxConns {
		t.Errorf("%d goroutines more with %d connections open", g, open)
	}
	// The bound: heap and stack of an idle connection, measured at about
	// 5 KiB (10 KiB under the race detector); connections that kept their
	// 8 KiB read buffer (20 KiB under the race detector) exceed it.
	perConn := int64(8 << 10)
	if raceDetector {
		perConn = 14 << 10
	}
	if bound := int64(maxConns) * perConn; grown > bound {
		t.Errorf("heap and stacks grew %d MiB with %d connections open, over the bound of %d MiB (%d KiB a connection)", grown>>20, open, bound>>20, perConn>>10)
	}
}
