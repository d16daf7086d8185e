package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
)

// buildReceiver builds this command once per test binary.
var buildReceiver = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "oncehook-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "receiver")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestProcessServesAndDrainsOnSIGTERM runs the real binary: it migrates,
// serves, and on SIGTERM finishes and delivers what it accepted, exits 0,
// and never logs the secret.
func TestProcessServesAndDrainsOnSIGTERM(t *testing.T) {
	t.Parallel()
	bin, err := buildReceiver()
	if err != nil {
		t.Fatal(err)
	}
	pool := testenv.Postgres(t)
	_, prefix := testenv.Redis(t)
	_ = prefix
	schema := pool.Config().ConnConfig.RuntimeParams["search_path"]
	if _, err := pool.Exec(context.Background(), "DROP TABLE stripe_webhook_events, oncehook_schema_migrations"); err != nil {
		t.Fatal(err) // the binary must migrate by itself
	}
	dbURL := testenv.DatabaseURL(t)
	sep := "?"
	if strings.Contains(dbURL, "?") {
		sep = "&"
	}
	addr := freeAddr(t)
	sinkPath := filepath.Join(t.TempDir(), "events.jsonl")
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(),
		"STRIPE_WEBHOOK_SECRET=whsec_other_endpoint,"+harness.Secret,
		"DATABASE_URL="+dbURL+sep+"search_path="+schema,
		"REDIS_URL="+testenv.RedisURL(t),
		"LISTEN_ADDR="+addr,
		"ADMIN_ADDR=",
		"SINK_URL=file://"+sinkPath,
		"LOG_LEVEL=debug",
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 30s; stderr:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("evt_proc_%02d", i)
			if resp := harness.Post(t, base+"/webhooks/stripe", harness.EventBody(id, "invoice.paid")); resp.Code != 200 {
				t.Errorf("%s: %d %s", id, resp.Code, resp.Body)
			}
		})
	}
	wg.Wait()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit 30s after SIGTERM")
	}

	f, err := os.Open(sinkPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		lines++
	}
	if lines != n {
		t.Errorf("file sink has %d lines, want %d", lines, n)
	}
	var delivered int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM stripe_webhook_events WHERE status = 'delivered'").Scan(&delivered); err != nil {
		t.Fatal(err)
	}
	if delivered != n {
		t.Errorf("%d rows delivered, want %d", delivered, n)
	}
	if strings.Contains(stderr.String(), "whsec_") {
		t.Errorf("a secret was logged:\n%s", stderr.String())
	}
}

func TestProcessRejectsBadConfig(t *testing.T) {
	t.Parallel()
	bin, err := buildReceiver()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = []string{"STRIPE_WEBHOOK_SECRET=whsec_x", "DATABASE_URL=postgres://localhost/db", "WORKERS=many"}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `WORKERS: "many" is not a whole number`) {
		t.Fatalf("err=%v, output:\n%s", err, out)
	}
}
