package testenv

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/oncehook/oncehook/internal/eventually"
)

// Replication is how a PostgresPair's primary waits for its standby.
type Replication int

const (
	// Async commits on the primary alone; the standby follows behind.
	Async Replication = iota
	// Sync lists the standby in synchronous_standby_names: a commit
	// returns once the standby has flushed it.
	Sync
)

func (r Replication) String() string {
	if r == Sync {
		return "sync"
	}
	return "async"
}

// pairOpts are the servers' options on top of pgFastOpts: fsync stays off
// (the data is throwaway), but a commit waits for its WAL, and on the
// synchronous primary for the standby, as in production.
const pairOpts = pgFastOpts + " -c synchronous_commit=on -c wal_level=replica -c max_wal_senders=5 -c hot_standby=on"

// PostgresPair is a private Postgres primary with a streaming standby,
// each on a free port of 127.0.0.1, user postgres with trust
// authentication. The standby replicates through a proxy of the test's,
// so that HoldReplication can stop the WAL for a while. Both are stopped
// and deleted when the test ends.
type PostgresPair struct {
	mode        Replication
	primaryDir  string
	primaryPort string
	standbyDir  string
	standbyPort string
	proxy       *gateProxy
}

// StartPostgresPair starts a primary, takes a base backup of it
// (pg_basebackup -R) and starts that as its standby, and waits until the
// standby streams.
func StartPostgresPair(t testing.TB, mode Replication) *PostgresPair {
	t.Helper()
	ensure(t)
	p := &PostgresPair{mode: mode, primaryDir: tempDir(t, "oncehook-pgprimary-"), primaryPort: freePort(t),
		standbyDir: tempDir(t, "oncehook-pgstandby-"), standbyPort: freePort(t)}
	t.Cleanup(func() { stopInCleanup(t, "pg-stop", p.primaryDir) })
	t.Cleanup(func() { stopInCleanup(t, "pg-stop", p.standbyDir) })
	opts := pairOpts
	if mode == Sync {
		opts += " -c synchronous_standby_names=standby"
	}
	servicesEnv(t, []string{"PG_EXTRA_OPTS=" + opts}, "pg-start", p.primaryDir, p.primaryPort)
	p.proxy = newGateProxy(t, "127.0.0.1:"+p.primaryPort)
	_, proxyPort, _ := net.SplitHostPort(p.proxy.addr())
	// The standby has no synchronous_standby_names: once promoted, it
	// commits alone.
	servicesEnv(t, []string{"PG_EXTRA_OPTS=" + pairOpts}, "pg-standby", p.standbyDir, p.standbyPort, p.primaryPort, proxyPort)
	p.waitStreaming(t)
	return p
}

// Mode is the pair's replication mode.
func (p *PostgresPair) Mode() Replication { return p.mode }

// PrimaryURL is the URL of the primary's postgres database.
func (p *PostgresPair) PrimaryURL() string {
	return "postgres://postgres@127.0.0.1:" + p.primaryPort + "/postgres?sslmode=disable"
}

// StandbyURL is the URL of the standby's postgres database: read-only
// until Promote, the primary after.
func (p *PostgresPair) StandbyURL() string {
	return "postgres://postgres@127.0.0.1:" + p.standbyPort + "/postgres?sslmode=disable"
}

// MultiHostURL names both servers, primary first, with
// target_session_attrs=read-write: every new connection goes to whichever
// of them accepts writes, as DATABASE_URL does in production.
func (p *PostgresPair) MultiHostURL() string {
	return "postgres://postgres@127.0.0.1:" + p.primaryPort + ",127.0.0.1:" + p.standbyPort +
		"/postgres?target_session_attrs=read-write&sslmode=disable&connect_timeout=2"
}

// HoldReplication stops forwarding the replication stream between the
// primary and the standby, both ways, until ReleaseReplication: the
// standby falls behind, and a synchronous primary's commits wait.
func (p *PostgresPair) HoldReplication() { p.proxy.hold(true) }

// ReleaseReplication forwards the replication stream again.
func (p *PostgresPair) ReleaseReplication() { p.proxy.hold(false) }

// CrashPrimary stops the primary in immediate mode, as a crash would, and
// drops the replication stream held back: the standby never gets the WAL
// it did not have.
func (p *PostgresPair) CrashPrimary(t testing.TB) {
	t.Helper()
	services(t, "pg-crash", p.primaryDir)
	p.proxy.close()
}

// Promote promotes the standby (pg_ctl promote) and returns once it
// accepts writes.
func (p *PostgresPair) Promote(t testing.TB) {
	t.Helper()
	services(t, "pg-promote", p.standbyDir)
	eventually.RequireNoError(t, 30*time.Second, "the promoted standby to accept writes", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, p.StandbyURL()+"&target_session_attrs=read-write")
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, "SELECT txid_current()") // assigns an xid: fails in recovery
		return err
	})
}

// Stop stops both servers (fast mode). Stopping a stopped server does
// nothing; the cleanup does it too.
func (p *PostgresPair) Stop(t testing.TB) {
	t.Helper()
	p.proxy.close()
	services(t, "pg-stop", p.primaryDir)
	services(t, "pg-stop", p.standbyDir)
}

// waitStreaming waits until the primary lists the standby as streaming,
// and, on a synchronous pair, as its synchronous standby.
func (p *PostgresPair) waitStreaming(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, p.PrimaryURL())
	if err != nil {
		t.Fatalf("connecting to the primary: %v", err)
	}
	defer c.Close(ctx)
	want := p.mode.String()
	var state, syncState string
	eventually.Require(t, 30*time.Second, "the standby to stream ("+want+") from the primary", func() bool {
		err = c.QueryRow(ctx, `SELECT state, sync_state FROM pg_stat_replication WHERE application_name = 'standby'`).Scan(&state, &syncState)
		return err == nil && state == "streaming" && syncState == want
	}, func() string { return fmt.Sprintf("state %q, sync_state %q, error %v", state, syncState, err) })
}

// gateProxy forwards TCP connections to upstream, and stops forwarding,
// both ways, while held.
type gateProxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	cond     *sync.Cond
	held     bool
	closed   bool
	conns    []net.Conn
}

func newGateProxy(t testing.TB, upstream string) *gateProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gateProxy{ln: ln, upstream: upstream}
	g.cond = sync.NewCond(&g.mu)
	t.Cleanup(g.close)
	go g.accept()
	return g
}

func (g *gateProxy) addr() string { return g.ln.Addr().String() }

func (g *gateProxy) hold(on bool) {
	g.mu.Lock()
	g.held = on
	g.mu.Unlock()
	g.cond.Broadcast()
}

// close stops the proxy and drops every connection, with what it held.
func (g *gateProxy) close() {
	g.mu.Lock()
	g.closed = true
	conns := g.conns
	g.conns = nil
	g.mu.Unlock()
	g.cond.Broadcast()
	_ = g.ln.Close()
	for _, c := range conns {
		_ = c.Close()
	}
}

func (g *gateProxy) accept() {
	for {
		down, err := g.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("tcp", g.upstream, 2*time.Second)
		if err != nil {
			_ = down.Close()
			continue
		}
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			_ = down.Close()
			_ = up.Close()
			return
		}
		g.conns = append(g.conns, down, up)
		g.mu.Unlock()
		go g.pipe(up, down)
		go g.pipe(down, up)
	}
}

// pipe copies src to dst, waiting at the gate before each write; it
// closes both when either side ends.
func (g *gateProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !g.pass() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// pass waits while the gate is held; false once the proxy is closed.
func (g *gateProxy) pass() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.held && !g.closed {
		g.cond.Wait()
	}
	return !g.closed
}
