package sink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/sink"
)

// TestFileSinkOnFullDiskKeepsWholeLines fills the file's filesystem: the
// delivery that does not fit fails, and leaves no partial line behind
// (a full disk takes what fits of a write, then fails it); once there is
// room, its retry and the next deliveries are whole lines, each event
// once.
func TestFileSinkOnFullDiskKeepsWholeLines(t *testing.T) {
	t.Parallel()
	fs := testenv.MountTmpfs(t, 1<<20)
	path := filepath.Join(fs.Dir, "events.jsonl")
	w, err := sink.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() }) // before the unmount
	fs.Fill(t, 64<<10)
	ev := func(i int) *event.Event {
		return &event.Event{ID: fmt.Sprintf("evt_full_%04d", i), Type: "invoice.paid",
			Payload: fmt.Appendf(nil, `{"id":"evt_full_%04d","pad":%q}`, i, strings.Repeat("x", 700))}
	}
	ctx := context.Background()
	failed := -1
	for i := range 1000 {
		if err := w.Deliver(ctx, ev(i)); err != nil {
			failed = i
			t.Logf("delivery %d failed: %v", i, err)
			break
		}
	}
	if failed < 0 {
		t.Fatal("1,000 deliveries fitted on a full disk")
	}
	for range 3 { // retried while still full: still failing
		if err := w.Deliver(ctx, ev(failed)); err == nil {
			t.Fatal("a retry on a full disk succeeded")
		}
	}
	ids := fileLineIDs(t, path)
	if len(ids) != failed {
		t.Fatalf("%d lines after %d deliveries that succeeded", len(ids), failed)
	}

	fs.Free(t)
	for i := failed; i < failed+10; i++ {
		if err := w.Deliver(ctx, ev(i)); err != nil {
			t.Fatalf("delivery %d with room again: %v", i, err)
		}
	}
	ids = fileLineIDs(t, path)
	if len(ids) != failed+10 {
		t.Fatalf("%d lines, want %d", len(ids), failed+10)
	}
	for i, id := range ids {
		if want := ev(i).ID; id != want {
			t.Fatalf("line %d is %s, want %s", i, id, want)
		}
	}
}

// fileLineIDs parses the file's JSON lines, failing on a partial or
// malformed one, and returns their ids in order.
func fileLineIDs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("the file ends in a partial line: %q", b[max(0, len(b)-80):])
	}
	var ids []string
	for i, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "" {
			continue
		}
		var v struct{ ID string }
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("line %d is not JSON (%v): %.120s", i, err, l)
		}
		ids = append(ids, v.ID)
	}
	return ids
}
