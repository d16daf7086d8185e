package ratelog

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// lines decodes the JSON log lines in out.
func lines(t *testing.T, out *bytes.Buffer) []map[string]any {
	t.Helper()
	var ls []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		ls = append(ls, m)
	}
	out.Reset()
	return ls
}

// TestBurstLogsUpToMaxThenSummarises: Max lines an interval one by one,
// the rest counted per key in one summary line once the interval ends;
// none is lost, and a new interval logs one by one again.
func TestBurstLogsUpToMaxThenSummarises(t *testing.T) {
	var out bytes.Buffer
	now := time.Unix(1000, 0)
	b := &Burst{Log: slog.New(slog.NewJSONHandler(&out, nil)), Max: 3, Interval: 10 * time.Second,
		Summary: "more went dead", Key: "destinations", now: func() time.Time { return now }}
	for i, dest := range []string{"a", "a", "b", "a", "b", "b", "c"} {
		b.Error(dest, "went dead", "n", i)
	}
	got := lines(t, &out)
	if len(got) != 3 {
		t.Fatalf("%d lines, want the first 3 one by one: %v", len(got), got)
	}
	for i, l := range got {
		if l["level"] != "ERROR" || l["msg"] != "went dead" || l["n"] != float64(i) {
			t.Errorf("line %d: %v", i, l)
		}
	}
	b.Flush(false) // the interval is not over: nothing yet
	if got := lines(t, &out); len(got) != 0 {
		t.Fatalf("a summary before the interval ended: %v", got)
	}
	now = now.Add(10 * time.Second)
	b.Flush(false)
	got = lines(t, &out)
	if len(got) != 1 {
		t.Fatalf("want one summary line, got %v", got)
	}
	s := got[0]
	dests, _ := s["destinations"].(map[string]any)
	if s["level"] != "ERROR" || s["msg"] != "more went dead" || s["not_logged"] != float64(4) || s["logged"] != float64(3) ||
		len(dests) != 3 || dests["a"] != float64(1) || dests["b"] != float64(2) || dests["c"] != float64(1) {
		t.Fatalf("summary: %v", s)
	}
	b.Error("a", "went dead", "n", 7)
	if got := lines(t, &out); len(got) != 1 || got[0]["n"] != float64(7) {
		t.Fatalf("a new interval logs one by one again: %v", got)
	}
	b.Flush(true)
	if got := lines(t, &out); len(got) != 0 {
		t.Fatalf("nothing held back, yet a summary: %v", got)
	}
}

// TestBurstSummarisesAtTheNextReport: a report after the interval ended
// logs the held summary first, and a forced flush logs at once.
func TestBurstSummarisesAtTheNextReport(t *testing.T) {
	var out bytes.Buffer
	now := time.Unix(1000, 0)
	b := &Burst{Log: slog.New(slog.NewJSONHandler(&out, nil)), Max: 1, Interval: time.Second,
		Summary: "more", Key: "destinations", now: func() time.Time { return now }}
	b.Error("a", "one")
	b.Error("a", "two")
	now = now.Add(time.Second)
	b.Error("a", "three")
	got := lines(t, &out)
	if len(got) != 3 || got[0]["msg"] != "one" || got[1]["msg"] != "more" || got[2]["msg"] != "three" {
		t.Fatalf("want one, the summary, three: %v", got)
	}
	b.Error("b", "four")
	b.Flush(true)
	if got := lines(t, &out); len(got) != 1 || got[0]["not_logged"] != float64(1) {
		t.Fatalf("a forced flush logs the summary at once: %v", got)
	}
}

// TestBurstBoundsItsKeys: past maxKeys the keys are counted together.
func TestBurstBoundsItsKeys(t *testing.T) {
	var out bytes.Buffer
	b := &Burst{Log: slog.New(slog.NewJSONHandler(&out, nil)), Max: 0, Interval: time.Hour, Summary: "more", Key: "k"}
	for i := range maxKeys + 50 {
		b.Error(strings.Repeat("x", i+1), "dead")
	}
	b.Flush(true)
	got := lines(t, &out)
	if len(got) != 1 {
		t.Fatalf("want one summary: %v", got)
	}
	keys, _ := got[0]["k"].(map[string]any)
	if len(keys) != maxKeys+1 || keys[otherKey] != float64(50) || got[0]["not_logged"] != float64(maxKeys+50) {
		t.Fatalf("keys %d (want %d), others %v, not_logged %v", len(keys), maxKeys+1, keys[otherKey], got[0]["not_logged"])
	}
}
