package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
)

// TestStalledStdoutDoesNotHoldShutdown runs the real binary with the
// stdout sink on a pipe that nobody reads, as a wedged log collector would
// leave it. Writes block in the kernel and cannot be cancelled, yet every
// delivery fails within DELIVERY_TIMEOUT and the process exits within
// SHUTDOWN_TIMEOUT of SIGTERM.
func TestStalledStdoutDoesNotHoldShutdown(t *testing.T) {
	t.Parallel()
	pool, dbURL := testDB(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	addr := testenv.FreeAddr(t)
	p := startProcessWithStdout(t, w, addr, dbURL,
		"STRIPE_WEBHOOK_SECRET="+harness.Secret, "SINK_URL=stdout",
		"DELIVERY_TIMEOUT=1s", "SHUTDOWN_TIMEOUT=3s", "WORKERS=4", "LOG_LEVEL=warn")
	w.Close() // the child holds the write end

	// Enough payload to fill the pipe's 64 KiB; then every write blocks.
	pad := strings.Repeat("x", 16<<10)
	run := fmt.Sprintf("%d", time.Now().UnixNano())
	for i := range 12 {
		id := fmt.Sprintf("evt_stall_%s_%02d", run, i)
		body := bytes.Replace(harness.EventBody(id, "invoice.paid"), []byte(`"object": "event",`), []byte(`"object": "event", "pad": "`+pad+`",`), 1)
		if resp := harness.Post(t, "http://"+addr+"/webhooks/stripe", body); resp.Code != 200 {
			t.Fatalf("%s: %d %s", id, resp.Code, resp.Body)
		}
	}
	// Deliveries stuck on the pipe fail by DELIVERY_TIMEOUT, counted as attempts.
	eventually.Require(t, 10*time.Second, "a delivery to fail on a stalled stdout", func() bool {
		var failed int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM stripe_webhook_deliveries WHERE attempts > 0 AND status = 'pending'`).Scan(&failed); err != nil {
			t.Fatal(err)
		}
		return failed > 0
	}, func() string { return "stderr:\n" + p.stderr.String() })

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	select {
	case <-p.exited:
		if el := time.Since(start); el > 4*time.Second {
			t.Errorf("exit took %s with SHUTDOWN_TIMEOUT=3s", el)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("still running 15s after SIGTERM with SHUTDOWN_TIMEOUT=3s; stderr:\n%s", p.stderr.String())
	}
}
