// Package faultproxy puts a Toxiproxy proxy, run in-process as a library,
// between a test and a real Redis or Postgres, so the test can cut, slow
// down or reset the connection and then heal it.
package faultproxy

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	_ "github.com/Shopify/toxiproxy/v2/toxics" // registers the toxics
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Proxy forwards a local port to an upstream address.
type Proxy struct {
	p *toxiproxy.Proxy
}

// New starts a proxy on a free port of 127.0.0.1 to upstream (host:port);
// it is stopped when the test ends.
func New(t testing.TB, name, upstream string) *Proxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("starting the %s proxy: %v", name, err)
	}
	t.Cleanup(p.Stop)
	return &Proxy{p: p}
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.p.Listen }

// Via returns rawURL (a postgres:// or redis:// URL) with its host:port
// replaced by the proxy's.
func Via(t testing.TB, rawURL string, p *Proxy) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.Addr()
	return u.String()
}

// Upstream returns the host:port of rawURL.
func Upstream(t testing.TB, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil || !strings.Contains(u.Host, ":") {
		t.Fatalf("%q has no host:port", rawURL)
	}
	return u.Host
}

// Down closes every connection and refuses new ones.
func (p *Proxy) Down() { p.p.Stop() }

// Up accepts connections again, on the same address.
func (p *Proxy) Up(t testing.TB) {
	t.Helper()
	if err := p.p.Start(); err != nil {
		t.Fatalf("restarting the proxy: %v", err)
	}
}

// Latency delays every reply by d.
func (p *Proxy) Latency(t testing.TB, d time.Duration) {
	t.Helper()
	p.add(t, fmt.Sprintf(`{"name":"latency","type":"latency","stream":"downstream","attributes":{"latency":%d}}`, d.Milliseconds()))
}

// ResetPeer makes every connection end with a TCP reset as soon as data flows.
func (p *Proxy) ResetPeer(t testing.TB) {
	t.Helper()
	p.add(t, `{"name":"reset","type":"reset_peer","stream":"upstream","attributes":{"timeout":0}}`)
}

// Heal removes every toxic.
func (p *Proxy) Heal() { p.p.Toxics.ResetToxics(context.Background()) }

func (p *Proxy) add(t testing.TB, toxic string) {
	if _, err := p.p.Toxics.AddToxicJson(strings.NewReader(toxic)); err != nil {
		t.Fatalf("adding toxic %s: %v", toxic, err)
	}
}
