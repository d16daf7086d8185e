package testenv

import (
	"bytes"
	"net"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/eventually"
)

// natsServerBin is where Debian's nats-server package installs the server.
const natsServerBin = "nats-server"

// NATSServer is a private nats-server with JetStream that a test can stop
// and restart on the same address and store directory.
type NATSServer struct {
	addr   string
	store  string
	args   []string
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	log    *bytes.Buffer
}

// StartNATS starts `nats-server -js` on a free port of 127.0.0.1, its
// JetStream store in a temporary directory, with args added (such as
// "--user", "u", "--pass", "p"). It is stopped when the test ends. The
// test fails, naming the Debian package, if nats-server is missing.
func StartNATS(t testing.TB, args ...string) *NATSServer {
	t.Helper()
	if _, err := exec.LookPath(natsServerBin); err != nil {
		t.Fatalf("nats-server is not installed (Debian package nats-server: apt-get install nats-server): %v", err)
	}
	s := &NATSServer{addr: FreeAddr(t), store: t.TempDir(), args: args}
	t.Cleanup(func() { s.Stop(t) })
	s.Start(t)
	return s
}

// URL returns nats://127.0.0.1:PORT.
func (s *NATSServer) URL() string { return "nats://" + s.addr }

// Start starts the server again, on the same address and store directory,
// and waits until it accepts connections. Starting a running server does
// nothing.
func (s *NATSServer) Start(t testing.TB) {
	t.Helper()
	if s.cmd != nil {
		return
	}
	host, port, _ := net.SplitHostPort(s.addr)
	s.log = &bytes.Buffer{}
	cmd := exec.Command(natsServerBin, append([]string{"-js", "-a", host, "-p", port, "-sd", s.store}, s.args...)...)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting nats-server: %v", err)
	}
	s.cmd = cmd
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	ready := func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	eventually.Require(t, 15*time.Second, "nats-server to listen on "+s.addr, ready)
	select {
	case <-exited:
		s.cmd = nil
		t.Fatalf("nats-server exited at start: %s", s.log)
	default:
	}
	s.exited = exited
}

// Stop stops the server (SIGTERM, then SIGKILL after 10s) and waits for it
// to exit. Stopping a stopped server does nothing.
func (s *NATSServer) Stop(t testing.TB) {
	t.Helper()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}
