package main

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{
		"90s": 90 * time.Second, "36h": 36 * time.Hour, "7d": 7 * 24 * time.Hour, "1d12h": 36 * time.Hour,
		"0d": 0, "2d30m": 48*time.Hour + 30*time.Minute, "-1d": -24 * time.Hour,
	} {
		if got, err := parseDuration(in); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "7", "1.5d", "7days", "1d-2h", "1dx", "99999999999999d"} {
		if got, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) = %v; want an error", in, got)
		}
	}
}

func TestCount(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		n            int
		noun, plural string
		want         string
	}{{0, "row", "", "0 rows"}, {1, "row", "", "1 row"}, {2, "row", "", "2 rows"},
		{1, "delivery", "deliveries", "1 delivery"}, {3, "delivery", "deliveries", "3 deliveries"}} {
		if got := count(c.n, c.noun, c.plural); got != c.want {
			t.Errorf("count(%d, %q) = %q, want %q", c.n, c.noun, got, c.want)
		}
	}
}
