package receiver_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/receiver"
)

// tcpServer accepts connections on a free port until the test ends, each
// served by serve on a goroutine of its own, and returns its address.
func tcpServer(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln.Addr().String()
}

// echoingServer answers every command with an error that repeats what it
// was sent, as a hostile or broken Redis or Sentinel might, and returns
// its address.
func echoingServer(t *testing.T) string {
	return tcpServer(t, func(c net.Conn) {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			// One error per command read (each starts with *).
			got := string(buf[:n])
			cmds := strings.Count("\n"+got, "\n*")
			line := "-ERR you sent " + strings.NewReplacer("\r", " ", "\n", " ").Replace(got) + "\r\n"
			if _, err := c.Write([]byte(strings.Repeat(line, max(cmds, 1)))); err != nil {
				return
			}
		}
	})
}

// TestReadinessRedactsSentinelPasswords: with REDIS_URL=redis+sentinel://,
// the readiness detail and its log name neither the master's password nor
// the Sentinels', even when a Sentinel's error repeats them.
func TestReadinessRedactsSentinelPasswords(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	rawURL := "redis+sentinel://app:masterpassword@" + echoingServer(t) + "/orders/0?sentinel_username=sen&sentinel_password=sentinelpassword"
	rdb, err := dedup.NewRedisClient(rawURL, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	dd, err := dedup.New(dedup.Config{Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	v, err := receiver.NewVerifier([]string{"whsec_readiness_test"}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	logs := new(harness.Buffer)
	srv, err := receiver.New(receiver.Config{
		Verifier: v, Deduper: dd, Queue: noQueue{}, Pool: pool, Redis: rdb,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	d := srv.ReadinessDetail(context.Background())
	if d.Redis != receiver.StateDown || !strings.Contains(d.RedisError, "you sent") {
		t.Fatalf("ReadinessDetail: %+v, want Redis down with the Sentinel's error", d)
	}
	for _, secret := range []string{"masterpassword", "sentinelpassword"} {
		if strings.Contains(d.RedisError, secret) {
			t.Errorf("ReadinessDetail.RedisError names %q: %s", secret, d.RedisError)
		}
	}
}
