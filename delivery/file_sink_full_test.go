package delivery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/sink"
)

// TestFileSinkOnFullDiskRetriesAndLosesNothing delivers to a file sink
// whose filesystem fills: the deliveries that do not fit fail and are
// retried, none is recorded as delivered unless its line is in the file,
// and once there is room every event is in the file, on a whole line of
// its own, once.
func TestFileSinkOnFullDiskRetriesAndLosesNothing(t *testing.T) {
	t.Parallel()
	fs := testenv.MountTmpfs(t, 1<<20)
	path := filepath.Join(fs.Dir, "events.jsonl")
	file, err := sink.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = file.Close() }) // after the instance stops, before the unmount
	fs.Fill(t, 96<<10)                     // room for about a hundred lines
	pool := testenv.Postgres(t)
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Sink: file, Delivery: delivery.DispatcherConfig{
		RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond, SweepInterval: 50 * time.Millisecond, MaxAttempts: 1000,
	}})

	const events = 500
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range events {
		id := fmt.Sprintf("evt_filefull_%03d", i)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if resp := harness.Post(t, in.URL, harness.EventBody(id, "invoice.paid")); resp.Code != 200 {
				t.Errorf("%s: %d %s", id, resp.Code, resp.Body)
			}
		})
	}
	wg.Wait()

	ctx := context.Background()
	var failed int
	eventually.Require(t, 20*time.Second, "deliveries failing on the full disk", func() bool {
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM stripe_webhook_delivery_attempts WHERE NOT ok AND error LIKE '%no space left on device%'`).Scan(&failed); err != nil {
			t.Fatal(err)
		}
		return failed >= 100
	})
	time.Sleep(time.Second) // the disk stays full: an intended fault window
	// Nothing recorded as delivered is missing from the file.
	var delivered []string
	if err := pool.QueryRow(ctx, `SELECT array_agg(event_id) FROM stripe_webhook_deliveries WHERE status = 'delivered'`).Scan(&delivered); err != nil {
		t.Fatal(err)
	}
	inFile := fileIDs(t, path)
	for _, id := range delivered {
		if inFile[id] == 0 {
			t.Errorf("%s recorded as delivered, but not in the file", id)
		}
	}
	if len(inFile) >= events {
		t.Fatalf("all %d events fitted on the full disk", len(inFile))
	}
	t.Logf("disk full: %d of %d events in the file, %d failed attempts so far", len(inFile), events, failed)

	fs.Free(t)
	roomAt := time.Now()
	eventually.Require(t, 30*time.Second, "every event in the file and recorded as delivered", func() bool {
		var pending int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM stripe_webhook_deliveries WHERE status <> 'delivered'`).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		return pending == 0 && len(fileIDs(t, path)) == events
	})
	took := time.Since(roomAt)
	for id, n := range fileIDs(t, path) {
		if n != 1 {
			t.Errorf("%s is in the file %d times", id, n)
		}
	}
	t.Logf("all %d events in the file, once each, %v after the room was made", events, took.Round(time.Millisecond))
}

// fileIDs parses a file sink's lines, failing on a partial or malformed
// one, and counts the lines of each event id.
func fileIDs(t *testing.T, path string) map[string]int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("the file ends in a partial line: %q", b[max(0, len(b)-80):])
	}
	ids := map[string]int{}
	for i, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "" {
			continue
		}
		var v struct{ ID string }
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("line %d is not JSON (%v): %.120s", i, err, l)
		}
		ids[v.ID]++
	}
	return ids
}
