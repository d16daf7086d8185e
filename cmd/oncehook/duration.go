package main

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"time"
)

// daysPrefix is a duration's leading whole days: "7d", "1d12h".
var daysPrefix = regexp.MustCompile(`^([+-]?)([0-9]+)d(.*)$`)

// parseDuration reads a Go duration (90s, 36h) that may begin with whole
// days (7d, 1d12h): a day is 24 hours. Every duration the commands take,
// from a flag or from the environment, is read by it.
func parseDuration(v string) (time.Duration, error) {
	m := daysPrefix.FindStringSubmatch(v)
	if m == nil {
		return time.ParseDuration(v)
	}
	days, err := strconv.ParseInt(m[2], 10, 64)
	if err != nil || days > math.MaxInt64/int64(24*time.Hour) {
		return 0, fmt.Errorf("%q: too many days", v)
	}
	d := time.Duration(days) * 24 * time.Hour
	if m[3] != "" {
		rest, err := time.ParseDuration(m[3])
		if err != nil || rest < 0 || rest > math.MaxInt64-d {
			return 0, fmt.Errorf("%q is not a duration like 7d, 1d12h or 36h", v)
		}
		d += rest
	}
	if m[1] == "-" {
		d = -d
	}
	return d, nil
}

// parseSince reads --since: a duration back from now (24h, 7d) or a date
// (2026-01-02 or RFC 3339).
func parseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := parseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, time.DateOnly} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration like 24h or 7d, or a date like 2026-01-02", v)
}
