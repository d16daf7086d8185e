package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/ratelog"
)

// TestRedisLogRedactsAndLimits: a go-redis message comes out as one JSON
// WARN line with the URL's password masked and invalid bytes replaced;
// a repeat within the interval is held back.
func TestRedisLogRedactsAndLimits(t *testing.T) {
	t.Parallel()
	var out harness.Buffer
	const url = "redis://:s3cret-pw@cache:6379/0"
	l := &redisLog{warn: &ratelog.Logger{Log: slog.New(slog.NewJSONHandler(&out, nil))}, urls: []string{"", url}}
	l.Printf(context.Background(), "redis: dialing %s: %s", url, "bad \xff byte")
	l.Printf(context.Background(), "redis: again")
	lines := logLines(t, out.String(), "redis client")
	if len(lines) != 1 {
		t.Fatalf("%d lines, want 1 (the repeat held back):\n%s", len(lines), out.String())
	}
	detail, _ := lines[0]["detail"].(string)
	if lines[0]["level"] != "WARN" || !strings.Contains(detail, "redis://:xxxxx@cache:6379/0") || !strings.Contains(detail, "bad \uFFFD byte") {
		t.Errorf("line %v: want WARN, the URL redacted, the text made safe", lines[0])
	}
	if strings.Contains(out.String(), "s3cret-pw") {
		t.Errorf("the password is logged:\n%s", out.String())
	}
}
