package pace

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Rate is a number of deliveries per period. The zero Rate is no limit.
type Rate struct {
	// Count is how many deliveries each Per allows.
	Count int
	// Per is the period: time.Second, time.Minute or time.Hour.
	Per time.Duration
}

// MaxPerSecond bounds a Rate: beyond a million deliveries a second, the
// schedule's microsecond steps are too coarse.
const MaxPerSecond = 1_000_000

// ErrBadRate is wrapped by ParseRate's errors.
var ErrBadRate = errors.New("want deliveries per second, minute or hour, such as 50/s, 600/m or 1000/h")

var periods = map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}

// ParseRate reads "N/s", "N/m" or "N/h", N a whole number of at least 1.
func ParseRate(s string) (Rate, error) {
	count, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	n, err := strconv.Atoi(strings.TrimSpace(count))
	per, known := periods[strings.TrimSpace(unit)]
	switch {
	case !ok || err != nil || !known:
		return Rate{}, fmt.Errorf("%q: %w", s, ErrBadRate)
	case n < 1:
		return Rate{}, fmt.Errorf("%q: at least 1 delivery per period: %w", s, ErrBadRate)
	}
	r := Rate{Count: n, Per: per}
	if !r.valid() {
		return Rate{}, fmt.Errorf("%q: more than %d a second: %w", s, MaxPerSecond, ErrBadRate)
	}
	return r, nil
}

// valid reports whether r is at least one a period and at most
// MaxPerSecond.
func (r Rate) valid() bool {
	return r.Count >= 1 && r.Per > 0 && float64(r.Count)/r.Per.Seconds() <= MaxPerSecond
}

// IsZero reports whether r is no limit.
func (r Rate) IsZero() bool { return r.Count == 0 }

// Interval is the time between two deliveries at r, rounded up.
func (r Rate) Interval() time.Duration {
	if r.Count == 0 {
		return 0
	}
	return (r.Per + time.Duration(r.Count) - 1) / time.Duration(r.Count)
}

// String is r as ParseRate reads it, or "" for no limit.
func (r Rate) String() string {
	for unit, per := range periods {
		if per == r.Per && r.Count > 0 {
			return strconv.Itoa(r.Count) + "/" + unit
		}
	}
	if r.Count == 0 {
		return ""
	}
	return fmt.Sprintf("%d/%s", r.Count, r.Per)
}
