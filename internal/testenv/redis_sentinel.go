package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oncehook/oncehook/internal/eventually"
)

// SentinelMaster is the master name StartRedisSentinel's Sentinel monitors.
const SentinelMaster = "oncehook-test"

// Sentinel timings: the master is taken for down after sentinelDownAfter
// without an answer; a failover that stalls is tried again after
// sentinelFailoverTimeout. A promotion takes a few seconds.
const (
	sentinelDownAfter       = 1000 * time.Millisecond
	sentinelFailoverTimeout = 5000 * time.Millisecond
)

// RedisSentinel is a private Redis master, one replica of it, and one
// Sentinel monitoring them (quorum 1), without persistence.
type RedisSentinel struct {
	nodes        map[string]*RedisServer // by address
	sentinelAddr string
	sentinel     *redis.SentinelClient
}

// StartRedisSentinel starts a master, a replica and a Sentinel on free
// ports of 127.0.0.1 and returns once the Sentinel knows the replica. All
// are stopped when the test ends.
func StartRedisSentinel(t testing.TB) *RedisSentinel {
	t.Helper()
	ensure(t)
	master := &RedisServer{dir: tempDir(t, "oncehook-redis-master-"), port: freePort(t)}
	t.Cleanup(func() { stopInCleanup(t, "redis-stop", master.dir) })
	// The replica's first sync starts at once, not after Redis's 5 s wait for more replicas.
	servicesEnv(t, []string{"REDIS_EXTRA_OPTS=--repl-diskless-sync-delay 0"}, "redis-start", master.dir, master.port)
	replica := &RedisServer{dir: tempDir(t, "oncehook-redis-replica-"), port: freePort(t)}
	t.Cleanup(func() { stopInCleanup(t, "redis-stop", replica.dir) })
	servicesEnv(t, []string{"REDIS_EXTRA_OPTS=--replicaof 127.0.0.1 " + master.port}, "redis-start", replica.dir, replica.port)

	s := &RedisSentinel{nodes: map[string]*RedisServer{
		"127.0.0.1:" + master.port:  master,
		"127.0.0.1:" + replica.port: replica,
	}}
	dir, port := tempDir(t, "oncehook-redis-sentinel-"), freePort(t)
	s.sentinelAddr = "127.0.0.1:" + port
	conf := filepath.Join(dir, "sentinel.conf") // Sentinel rewrites it: its own file
	text := fmt.Sprintf(`port %s
bind 127.0.0.1
daemonize no
dir %s
logfile %s
sentinel monitor %s 127.0.0.1 %s 1
sentinel down-after-milliseconds %s %d
sentinel failover-timeout %s %d
sentinel parallel-syncs %s 1
`, port, dir, filepath.Join(dir, "sentinel.log"), SentinelMaster, master.port,
		SentinelMaster, sentinelDownAfter.Milliseconds(), SentinelMaster, sentinelFailoverTimeout.Milliseconds(), SentinelMaster)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-server", conf, "--sentinel")
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redis-server --sentinel (Debian package redis-server or redis-sentinel): %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	s.sentinel = redis.NewSentinelClient(&redis.Options{Addr: s.sentinelAddr, MaxRetries: -1})
	t.Cleanup(func() { _ = s.sentinel.Close() })

	// Ready when the Sentinel lists the replica as up and linked.
	var replicas []map[string]string
	var err error
	eventually.Require(t, 20*time.Second, "the Sentinel to list the replica as up", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		replicas, err = s.sentinel.Replicas(ctx, SentinelMaster).Result()
		return err == nil && len(replicas) == 1 && replicas[0]["flags"] == "slave" && replicas[0]["master-link-status"] == "ok"
	}, func() string {
		log, _ := os.ReadFile(filepath.Join(dir, "sentinel.log"))
		return fmt.Sprintf("last answer %v, %v; sentinel.log:\n%s", replicas, err, log)
	})
	return s
}

// URL is a REDIS_URL of the form redis+sentinel://host:port/MASTER_NAME/0.
func (s *RedisSentinel) URL() string {
	return "redis+sentinel://" + s.sentinelAddr + "/" + SentinelMaster + "/0"
}

// SentinelAddr is the Sentinel's address, host:port.
func (s *RedisSentinel) SentinelAddr() string { return s.sentinelAddr }

// MasterAddr is the master's address as the Sentinel names it now.
func (s *RedisSentinel) MasterAddr(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	a, err := s.sentinel.GetMasterAddrByName(ctx, SentinelMaster).Result()
	if err != nil {
		t.Fatalf("SENTINEL GET-MASTER-ADDR-BY-NAME: %v", err)
	}
	return net.JoinHostPort(a[0], a[1])
}

// KillMaster kills the current master with SIGKILL, as a crash would,
// and returns its address. The Sentinel notices after down-after-
// milliseconds (1 s) and promotes the replica; see WaitPromoted.
func (s *RedisSentinel) KillMaster(t testing.TB) string {
	t.Helper()
	addr := s.MasterAddr(t)
	node := s.nodes[addr]
	if node == nil {
		t.Fatalf("the Sentinel names master %s, which this test did not start", addr)
	}
	b, err := os.ReadFile(filepath.Join(node.dir, "redis.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("redis.pid: %v", err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing the master (pid %d): %v", pid, err)
	}
	return addr
}

// WaitPromoted waits until the Sentinel names a master other than old and
// that server says it is a master, and returns its address.
func (s *RedisSentinel) WaitPromoted(t testing.TB, old string, timeout time.Duration) string {
	t.Helper()
	var addr string
	var err error
	eventually.Require(t, timeout, "the Sentinel to promote a new master", func() bool {
		addr, err = s.Promoted(old)
		return err == nil && addr != ""
	}, func() string { return fmt.Sprintf("last answer %q, %v", addr, err) })
	return addr
}

// Promoted returns the master's address if the Sentinel names one other
// than old and that server says it is a master, else "". It does not fail
// the test, so that any goroutine may poll it.
func (s *RedisSentinel) Promoted(old string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	a, err := s.sentinel.GetMasterAddrByName(ctx, SentinelMaster).Result()
	if err != nil {
		return "", err
	}
	addr := net.JoinHostPort(a[0], a[1])
	if addr == old {
		return "", nil
	}
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	info, err := c.Info(ctx, "replication").Result()
	if err != nil || !strings.Contains(info, "role:master") {
		return "", err
	}
	return addr, nil
}

// Client is a plain client of one server of the set, by address, closed
// when the test ends.
func (s *RedisSentinel) Client(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}
