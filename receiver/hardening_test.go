package receiver_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/receiver"
)

func TestAllowlistBehindTrustedProxy(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	allow, _ := receiver.ParsePrefixes("stripe")
	proxies, _ := receiver.ParsePrefixes("127.0.0.1")
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Sink: harness.NewRecordingSink(),
		Tune: func(c *receiver.Config) { c.Allowlist, c.TrustedProxies = allow, proxies }})

	post := func(id, xff string) harness.Response {
		body := harness.EventBody(id, "invoice.paid")
		req, _ := http.NewRequest(http.MethodPost, in.URL, strings.NewReader(string(body)))
		req.Header.Set("Stripe-Signature", harness.Sign(body))
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return harness.Response{Code: resp.StatusCode, Body: string(b)}
	}
	if r := post("evt_allow_1", "3.18.12.63"); r.Code != 200 {
		t.Errorf("from a Stripe IP via the proxy: %d %s", r.Code, r.Body)
	}
	if r := post("evt_allow_2", "203.0.113.9"); r.Code != 403 || !strings.Contains(r.Body, "STRIPE_IP_ALLOWLIST") {
		t.Errorf("from another IP: %d %s, want 403", r.Code, r.Body)
	}
	if r := post("evt_allow_3", "3.18.12.63, 203.0.113.9"); r.Code != 403 {
		t.Errorf("a forged Stripe IP left of the real client: %d %s, want 403", r.Code, r.Body)
	}
	if r := post("evt_allow_4", ""); r.Code != 403 {
		t.Errorf("the proxy itself, not allowed: %d %s, want 403", r.Code, r.Body)
	}
	if n := countRows(t, pool); n != 1 {
		t.Errorf("%d rows stored, want only the allowed one", n)
	}
}

func selfSignedCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

func TestTLS(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	cert, key := selfSignedCert(t)
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Sink: harness.NewRecordingSink(),
		Tune: func(c *receiver.Config) { c.TLSCertFile, c.TLSKeyFile = cert, key }})
	url := strings.Replace(in.URL, "http://", "https://", 1)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	body := harness.EventBody("evt_tls", "invoice.paid")
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
	req.Header.Set("Stripe-Signature", harness.Sign(body))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("over TLS: %d tls=%v", resp.StatusCode, resp.TLS != nil)
	}
}

// rawExchange writes req on a fresh connection from local and returns the
// status code, or 0 when the server cut the connection without one.
func rawExchange(t *testing.T, addr, local string, req string, hold time.Duration) int {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return 0
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(hold + 10*time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		return 0
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestHostileRequests(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Sink: harness.NewRecordingSink(),
		Tune: func(c *receiver.Config) { c.ReadTimeout = time.Second }})
	addr := strings.TrimPrefix(in.Base, "http://")
	post := func(headers string, body string) string {
		return "POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n" + headers + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body
	}
	var flood strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&flood, "X-Flood-%d: yes\r\n", i)
	}
	nested := strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000)
	nestedEvent := `{"id":"evt_deep","type":"t","x":` + nested + `}`
	invalidUTF8 := "{\"id\":\"evt_utf8\",\"type\":\"inv\xffoice.paid\"}"
	for _, c := range []struct {
		name string
		req  string
		want []int // any of
	}{
		{"header flood", post(flood.String(), "{}"), []int{431}},
		{"very long header value", post("X-Long: "+strings.Repeat("a", 64<<10)+"\r\n", "{}"), []int{431}},
		{"million-digit t=", post("Stripe-Signature: t="+strings.Repeat("9", 1_000_000)+",v1=00\r\n", "{}"), []int{431}},
		{"10,000-entry v1 list", post("Stripe-Signature: t=1"+strings.Repeat(",v1=00", 10_000)+"\r\n", "{}"), []int{431}},
		{"long but allowed signature header, many v1", post("Stripe-Signature: t=1"+strings.Repeat(",v1=00", 1000)+"\r\n", "{}"), []int{400}},
		{"deeply nested JSON", post("Stripe-Signature: "+harness.Sign([]byte(nestedEvent))+"\r\n", nestedEvent), []int{400}},
		{"invalid UTF-8 in the type", post("Stripe-Signature: "+harness.Sign([]byte(invalidUTF8))+"\r\n", invalidUTF8), []int{400}},
		{"body shorter than Content-Length", "POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{\"id\":", []int{0, 408}},
		{"body longer than Content-Length", "POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}GARBAGE GARBAGE\r\n\r\n", []int{400}},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			got := rawExchange(t, addr, "127.0.0.1", c.req, 2*time.Second)
			if !slices.Contains(c.want, got) {
				t.Fatalf("status %d, want one of %v (0 = connection cut)", got, c.want)
			}
			if el := time.Since(start); el > 5*time.Second {
				t.Fatalf("took %s: not cut by the read timeout", el)
			}
		})
	}
	if n := countRows(t, pool); n != 0 {
		t.Fatalf("hostile requests stored %d rows", n)
	}
}

// TestAbusersDoNotStarveStripe holds slow-loris connections and idle ones
// from 127.0.0.2 while Stripe-like traffic comes from 127.0.0.1: the abuser
// is capped per address and cut by the read timeout; Stripe's deliveries
// keep flowing.
func TestAbusersDoNotStarveStripe(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Redis: rdb, KeyPrefix: prefix, Sink: harness.NewRecordingSink(),
		Tune: func(c *receiver.Config) {
			c.ReadTimeout, c.IdleTimeout, c.Concurrency, c.MaxConnsPerIP = time.Second, 2*time.Second, 64, 16
		}})
	addr := strings.TrimPrefix(in.Base, "http://")

	stop := make(chan struct{})
	var abusers sync.WaitGroup
	var cut, refused sync.Map
	var tried atomic.Int32 // the abusers that have tried to take a connection
	for i := range 100 {   // far more than MaxConnsPerIP and Concurrency
		abusers.Go(func() {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
			first := true
			for {
				select {
				case <-stop:
					return
				default:
				}
				conn, err := d.Dial("tcp", addr)
				if first {
					first = false
					tried.Add(1)
				}
				if err != nil {
					refused.Store(i, true)
					// Intended fault window: the abuser redials a refused
					// connection every 50ms, an attack that keeps coming.
					time.Sleep(50 * time.Millisecond)
					continue
				}
				// Slow-loris: a header byte every 200ms, never finishing.
				held := time.Now()
				_, _ = io.WriteString(conn, "POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n")
				for {
					if _, err := io.WriteString(conn, "X"); err != nil {
						break
					}
					_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
					if _, err := conn.Read(make([]byte, 1)); err == nil || !isTimeout(err) {
						break // answered or closed
					}
				}
				// A refusal comes at once; a connection held this long was
				// cut by the read timeout. (Whether the client sees the cut
				// on a write or a read is a race.)
				if time.Since(held) >= 500*time.Millisecond {
					cut.Store(i, true)
				}
				conn.Close()
			}
		})
	}
	eventually.Require(t, 10*time.Second, "every abuser to take its connection", func() bool { return tried.Load() == 100 })

	var lat []time.Duration
	for i := range 200 {
		body := harness.EventBody(fmt.Sprintf("evt_stripe_%d", i), "invoice.paid")
		start := time.Now()
		if r := harness.Post(t, in.URL, body); r.Code != 200 {
			t.Fatalf("Stripe-like delivery %d: %d %s", i, r.Code, r.Body)
		}
		lat = append(lat, time.Since(start))
	}
	close(stop)
	abusers.Wait()
	slices.Sort(lat)
	p95, p99 := lat[len(lat)*95/100], lat[len(lat)*99/100]
	n := func(m *sync.Map) (k int) { m.Range(func(any, any) bool { k++; return true }); return }
	t.Logf("Stripe-like p95 %s, p99 %s with 100 abusive connections; abusers cut: %d, refused: %d", p95, p99, n(&cut), n(&refused))
	// Starved, the Stripe-like requests would wait for abusers to be cut
	// (the read timeout, 1 s) again and again. The bound is on the 95th
	// percentile: on 2 cores shared with the rest of make test, the 99th
	// (two of the 200 requests) once reached 0.9 s in CI.
	if p95 > 500*time.Millisecond {
		t.Errorf("Stripe-like p95 %s while abused, want it bounded", p95)
	}
	if n(&cut) == 0 {
		t.Error("no slow-loris connection was cut")
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestHostileConnectionsDoNotDenyService is issue item 8, scaled down
// (bench scenario hostile runs it in full): 127.0.0.2 holds idle
// connections, slow bodies and slow headers, far more than Concurrency,
// while signed deliveries from 127.0.0.1 all get 200 without waiting.
func TestHostileConnectionsDoNotDenyService(t *testing.T) {
	// Not parallel: it measures latency.
	pool := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Redis: rdb, KeyPrefix: prefix, Sink: harness.NewRecordingSink()})
	addr := strings.TrimPrefix(in.Base, "http://")
	const idle, slowBodies, slowHeaders, deliveries = 1500, 100, 200, 300

	attack := hostileConns(t, addr, idle, slowBodies, slowHeaders)
	defer attack.stop()

	var mu sync.Mutex
	var lat []time.Duration
	codes := map[int]int{}
	var wg sync.WaitGroup
	next := make(chan int, deliveries)
	for i := range deliveries {
		next <- i
	}
	close(next)
	for range 16 {
		wg.Go(func() {
			for i := range next {
				body := harness.EventBody(fmt.Sprintf("evt_hostile_%d", i), "invoice.paid")
				start := time.Now()
				r := harness.Post(t, in.URL, body)
				mu.Lock()
				lat = append(lat, time.Since(start))
				codes[r.Code]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(lat)
	p99 := lat[len(lat)*99/100]
	t.Logf("%d signed deliveries while %d idle connections, %d slow bodies and %d slow headers are held: answers %v, p50 %s, p99 %s, max %s",
		deliveries, idle, slowBodies, slowHeaders, codes, lat[len(lat)/2], p99, lat[len(lat)-1])
	if codes[200] != deliveries {
		t.Fatalf("answers %v: want all %d deliveries 200", codes, deliveries)
	}
	// A denial shows as seconds: a delivery waiting for a slot the
	// attackers hold until their read timeout. The bound leaves room for a
	// loaded test machine; the latency target itself is the bench's.
	if p99 > 500*time.Millisecond {
		t.Errorf("p99 %s under attack, want it bounded (<= 500ms)", p99)
	}
	if n := countRows(t, pool); n != deliveries {
		t.Errorf("%d rows stored, want %d", n, deliveries)
	}
	if cut := attack.cut(); cut > 0 {
		t.Errorf("%d attacking connections were cut before the read timeout: the test did not hold its attack", cut)
	}
}

// hostile is an attack from 127.0.0.2: connections that send nothing,
// bodies declaring 200 KB sent a byte a second (half of them after 16 KB at
// once), and headers sent a byte a second.
type hostile struct {
	conns   []net.Conn
	slow    []net.Conn
	pending [][]byte // what each slow connection still sends
	done    chan struct{}
	wg      sync.WaitGroup
	dropped atomic.Int64
}

func hostileConns(t *testing.T, addr string, idle, slowBodies, slowHeaders int) *hostile {
	t.Helper()
	h := &hostile{done: make(chan struct{})}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	dial := func() net.Conn {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("attacker: %v", err)
		}
		h.conns = append(h.conns, c)
		return c
	}
	for range idle {
		dial()
	}
	for i := range slowBodies {
		c := dial()
		_, _ = fmt.Fprintf(c, "POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nStripe-Signature: t=1,v1=00\r\nContent-Length: %d\r\n\r\n", 200<<10)
		if i%2 == 0 {
			_, _ = c.Write(make([]byte, 16<<10))
		}
		h.slow, h.pending = append(h.slow, c), append(h.pending, bytes.Repeat([]byte("a"), 100))
	}
	for range slowHeaders {
		c := dial()
		h.slow, h.pending = append(h.slow, c), append(h.pending, []byte("POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nX-Slow: "+strings.Repeat("a", 100)))
	}
	h.wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			for i, c := range h.slow {
				if len(h.pending[i]) == 0 {
					continue
				}
				if _, err := c.Write(h.pending[i][:1]); err != nil {
					h.dropped.Add(1)
					h.pending[i] = nil
					continue
				}
				h.pending[i] = h.pending[i][1:]
			}
			select {
			case <-h.done:
				return
			case <-tick.C:
			}
		}
	})
	// Intended fault window: the server takes the attackers' connections
	// in (accepts them and starts reading); nothing outside the server
	// signals that it has.
	time.Sleep(200 * time.Millisecond)
	return h
}

// cut returns how many slow connections the server has closed so far.
func (h *hostile) cut() int64 { return h.dropped.Load() }

func (h *hostile) stop() {
	close(h.done)
	h.wg.Wait()
	for _, c := range h.conns {
		c.Close()
	}
}

// TestSlowReadersAtTheBoundAreShed: slow headers and slow bodies fill every
// connection slot. Once they have been reading for longer than a request
// takes, a new connection sheds the oldest of them, so signed deliveries
// still get 200.
func TestSlowReadersAtTheBoundAreShed(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	const maxConns, deliveries = 300, 40
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Sink: harness.NewRecordingSink(),
		Tune: func(c *receiver.Config) { c.MaxConns = maxConns }})
	attackStart := time.Now()
	attack := hostileConns(t, strings.TrimPrefix(in.Base, "http://"), 0, maxConns/2, maxConns/2)
	defer attack.stop()
	// Within the grace a request gets to arrive (1s), the slow readers keep
	// their slots: the bound is full. The check holds only if the answer
	// comes within the grace of the first slow reader's start: on a loaded
	// machine setting up 300 connections can take longer than that.
	body := harness.EventBody("evt_slow_bound_early", "invoice.paid")
	req, _ := http.NewRequest(http.MethodPost, in.URL, bytes.NewReader(body))
	req.Header.Set("Stripe-Signature", harness.Sign(body))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		switch took := time.Since(attackStart); {
		case took >= 900*time.Millisecond:
			t.Logf("the early check answered %d %s after the attack began, past the grace: not judged", resp.StatusCode, took)
		case resp.StatusCode != 503:
			t.Fatalf("with every slot reading for less than the grace: %d, want 503 or a refused connection", resp.StatusCode)
		}
	}
	// Intended fault window: the slow readers go on holding every slot
	// past the 1s grace a request gets to arrive, so that they can be shed.
	time.Sleep(1200 * time.Millisecond)

	codes := map[int]int{}
	for i := range deliveries {
		codes[harness.Post(t, in.URL, harness.EventBody(fmt.Sprintf("evt_slow_bound_%d", i), "invoice.paid")).Code]++
	}
	if codes[200] != deliveries {
		t.Fatalf("answers %v with %d slow readers holding every slot: want all %d deliveries 200", codes, maxConns, deliveries)
	}
}
