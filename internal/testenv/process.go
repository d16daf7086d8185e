package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// pgFastOpts trades durability for speed, which is fine for throwaway clusters.
const pgFastOpts = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"

// PostgresServer is a private Postgres cluster a test can stop and restart.
type PostgresServer struct {
	dir  string
	port string
	env  []string // more environment for scripts/services.sh pg-start
}

// StartPostgres creates and starts a private Postgres cluster on a free port
// of 127.0.0.1, with user postgres and trust authentication. The cluster is
// stopped and deleted when the test ends.
func StartPostgres(t testing.TB) *PostgresServer {
	t.Helper()
	ensure(t)
	s := &PostgresServer{dir: tempDir(t, "oncehook-pg-"), port: freePort(t)}
	t.Cleanup(func() { stopInCleanup(t, "pg-stop", s.dir) })
	s.Start(t)
	return s
}

// URL returns the connection URL of the server's postgres database.
func (s *PostgresServer) URL() string {
	return "postgres://postgres@127.0.0.1:" + s.port + "/postgres?sslmode=disable"
}

// Stop shuts the server down in fast mode, closing open connections.
// Stopping a stopped server does nothing.
func (s *PostgresServer) Stop(t testing.TB) {
	t.Helper()
	services(t, "pg-stop", s.dir)
}

// Start starts the server again on the same port and data directory.
// Starting a running server does nothing.
func (s *PostgresServer) Start(t testing.TB) {
	t.Helper()
	servicesEnv(t, s.env, "pg-start", s.dir, s.port)
}

// RedisServer is a private Redis server, without persistence, that a test can
// stop and restart. A restart loses all data.
type RedisServer struct {
	dir  string
	port string
}

// StartRedis starts a private Redis server on a free port of 127.0.0.1.
// The server is stopped and its directory deleted when the test ends.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	ensure(t)
	s := &RedisServer{dir: tempDir(t, "oncehook-redis-"), port: freePort(t)}
	t.Cleanup(func() { stopInCleanup(t, "redis-stop", s.dir) })
	s.Start(t)
	return s
}

// URL returns the connection URL of the server's database 0.
func (s *RedisServer) URL() string {
	return "redis://127.0.0.1:" + s.port + "/0"
}

// Stop shuts the server down. Stopping a stopped server does nothing.
func (s *RedisServer) Stop(t testing.TB) {
	t.Helper()
	services(t, "redis-stop", s.dir)
}

// Start starts the server again on the same port, empty.
// Starting a running server does nothing.
func (s *RedisServer) Start(t testing.TB) {
	t.Helper()
	services(t, "redis-start", s.dir, s.port)
}

// ensure fails the test, with install instructions, if the server binaries
// are missing. The check runs once per test binary.
func ensure(t testing.TB) {
	t.Helper()
	if out, err := ensureOnce(); err != nil {
		t.Fatalf("Redis/Postgres binaries unavailable: %v\n%s", err, out)
	}
}

var ensureOnce = sync.OnceValues(func() (string, error) { return runServices("ensure") })

func freePort(t testing.TB) string {
	t.Helper()
	port := services(t, "free-port")
	if _, err := strconv.Atoi(port); err != nil {
		t.Fatalf("services.sh free-port printed %q, want a port number", port)
	}
	return port
}

// tempDir makes a directory directly under os.TempDir, where the postgres user
// can reach it when we run as root (t.TempDir nests its directories in one
// private to us). It is removed when the test ends.
func tempDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func stopInCleanup(t testing.TB, args ...string) {
	if out, err := runServices(args...); err != nil {
		t.Errorf("scripts/services.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// services runs scripts/services.sh and returns its trimmed standard output,
// failing the test with all of its output if it fails.
func services(t testing.TB, args ...string) string {
	t.Helper()
	return servicesEnv(t, nil, args...)
}

// servicesEnv is services with more environment for the script.
func servicesEnv(t testing.TB, env []string, args ...string) string {
	t.Helper()
	out, err := runServicesEnv(env, args...)
	if err != nil {
		t.Fatalf("scripts/services.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// runServices runs scripts/services.sh, which holds the start/stop logic shared
// with scripts/testenv.sh. On success it returns the trimmed
// standard output; on failure, standard output and standard error together.
func runServices(args ...string) (string, error) { return runServicesEnv(nil, args...) }

func runServicesEnv(env []string, args ...string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", append([]string{filepath.Join(root, "scripts", "services.sh")}, args...)...)
	cmd.Env = append(append(os.Environ(), "PG_EXTRA_OPTS="+pgFastOpts), env...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// The servers detach from our pipes; don't hang if one ever holds them open.
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return strings.TrimSpace(stdout.String() + stderr.String()), err
	}
	return strings.TrimSpace(stdout.String()), nil
}

// repoRoot is the nearest directory at or above the working directory that
// contains go.mod.
var repoRoot = sync.OnceValues(func() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod in or above the working directory")
		}
		dir = parent
	}
})

// FreeAddr is a 127.0.0.1 address that nothing listens on now: for a
// server a test starts, or for a dependency that must refuse connections.
// Its port is below the kernel's ephemeral range (and below the 20000-32000
// of scripts/services.sh), so that no outgoing connection of a test takes
// it between now and the server's bind, nor while a killed server is down
// before its restart on the same address; and it is never handed out
// twice in a process.
func FreeAddr(t testing.TB) string {
	t.Helper()
	freeMu.Lock()
	defer freeMu.Unlock()
	for range 200 {
		port := 10000 + rand.IntN(10000)
		if freeGiven[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		_ = ln.Close()
		freeGiven[port] = true
		return ln.Addr().String()
	}
	t.Fatal("testenv: no free port in 10000-19999 after 200 tries")
	return ""
}

var (
	freeMu    sync.Mutex
	freeGiven = map[int]bool{}
)
