package testenv

import (
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StartRedisCluster starts a private three-node Redis Cluster (no
// replicas) and returns a REDIS_URL naming all three nodes, in the form
// dedup.NewRedisClient takes for a cluster. It is stopped when the test ends.
func StartRedisCluster(t testing.TB) string {
	t.Helper()
	ensure(t)
	var addrs []string
	for range 3 {
		dir, port := tempDir(t, "oncehook-redis-cluster-"), freeClusterPort(t)
		t.Cleanup(func() { stopInCleanup(t, "redis-stop", dir) })
		opts := "REDIS_EXTRA_OPTS=--cluster-enabled yes --cluster-config-file " + dir + "/nodes.conf --cluster-node-timeout 2000"
		servicesEnv(t, []string{opts}, "redis-start", dir, port)
		addrs = append(addrs, "127.0.0.1:"+port)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	out, err := exec.Command("redis-cli", append(args, "--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok := true
		for _, a := range addrs {
			host, port, _ := strings.Cut(a, ":")
			info, _ := exec.Command("redis-cli", "-h", host, "-p", port, "cluster", "info").Output()
			ok = ok && strings.Contains(string(info), "cluster_state:ok")
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the Redis cluster did not become ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "redis://" + addrs[0] + "?addr=" + addrs[1] + "&addr=" + addrs[2]
}

// freeClusterPort is a free port whose cluster bus port (port + 10000) is
// free too: a node whose bus port is taken exits at start.
func freeClusterPort(t testing.TB) string {
	t.Helper()
	for range 50 {
		port := freePort(t)
		n, _ := strconv.Atoi(port)
		if n+10000 > 65535 {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(n+10000))
		if err != nil {
			continue
		}
		ln.Close()
		return port
	}
	t.Fatal("no free port with a free cluster bus port (port + 10000)")
	return ""
}
