package sink_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/sink"
)

func TestWriterWritesOneCompactLinePerEvent(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := sink.NewWriter(&buf)
	ev := &event.Event{ID: "evt_1", Type: "invoice.paid", Created: time.Unix(1_700_000_000, 0), Account: "acct_1",
		Payload: []byte("{\n  \"id\": \"evt_1\",\n  \"name\": \"Zoë <b>\"\n}")}
	for range 2 {
		if err := w.Deliver(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2: %q", len(lines), buf.String())
	}
	want := `{"id":"evt_1","type":"invoice.paid","created":"2023-11-14T22:13:20Z","livemode":false,"account":"acct_1","payload":{"id":"evt_1","name":"Zoë <b>"}}`
	if lines[0] != want {
		t.Fatalf("line\n%s\nwant\n%s", lines[0], want)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Deliver(context.Background(), ev); err == nil {
		t.Fatal("Deliver after Close: want error")
	}
}

func TestFileSinkAppends(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "events.jsonl")
	for i, id := range []string{"evt_a", "evt_b"} {
		w, err := sink.OpenFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Deliver(context.Background(), &event.Event{ID: id, Type: "t", Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != i+1 {
			t.Fatalf("after %d opens: %d lines", i+1, len(lines))
		}
		var l struct{ ID string }
		if err := json.Unmarshal([]byte(lines[i]), &l); err != nil || l.ID != id {
			t.Fatalf("line %d = %s (%v)", i, lines[i], err)
		}
	}
	if _, err := sink.OpenFile(filepath.Join(t.TempDir(), "no", "such", "dir", "x")); err == nil {
		t.Fatal("OpenFile in a missing directory: want error")
	}
}

// TestWriterHonoursContextWhileStalled: the sink itself returns at ctx's
// end, on the stalled write and on the writes queued behind it.
func TestWriterHonoursContextWhileStalled(t *testing.T) {
	t.Parallel()
	pr, pw := io.Pipe()
	t.Cleanup(func() { pr.Close() })
	w := sink.NewWriter(pw)
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		start := time.Now()
		err := w.Deliver(ctx, &event.Event{ID: "evt_stalled", Type: "invoice.paid", Payload: []byte(`{}`)})
		cancel()
		if err == nil || time.Since(start) > time.Second {
			t.Fatalf("delivery %d on a stalled pipe: %v after %s, want an error at the deadline", i, err, time.Since(start))
		}
	}
}
