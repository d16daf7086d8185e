package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// logLines decodes the serve command's JSON log (LOG_FORMAT's default) and
// returns the lines whose msg starts with prefix ("" for all). A line that
// is not JSON fails the test: everything serve writes to stderr is.
func logLines(t *testing.T, log, prefix string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		if msg, _ := m["msg"].(string); strings.HasPrefix(msg, prefix) {
			out = append(out, m)
		}
	}
	return out
}

// startLine is the serve command's "oncehook listening" line.
func startLine(t *testing.T, log string) map[string]any {
	t.Helper()
	ls := logLines(t, log, "oncehook listening")
	if len(ls) != 1 {
		t.Fatalf("%d start lines, want 1:\n%s", len(ls), log)
	}
	return ls[0]
}
