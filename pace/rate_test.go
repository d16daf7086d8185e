package pace

import (
	"errors"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	good := map[string]Rate{
		"50/s":      {50, time.Second},
		"600/m":     {600, time.Minute},
		" 1000/h ":  {1000, time.Hour},
		"1/h":       {1, time.Hour},
		"1000000/s": {MaxPerSecond, time.Second},
	}
	for in, want := range good {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "50", "50/d", "0/s", "-3/s", "x/s", "50/sec", "1000001/s", "1.5/s"} {
		if r, err := ParseRate(in); !errors.Is(err, ErrBadRate) {
			t.Errorf("ParseRate(%q) = %v, %v; want ErrBadRate", in, r, err)
		}
	}
}

func TestRateIntervalAndString(t *testing.T) {
	cases := []struct {
		r        Rate
		interval time.Duration
		str      string
	}{
		{Rate{100, time.Second}, 10 * time.Millisecond, "100/s"},
		{Rate{600, time.Minute}, 100 * time.Millisecond, "600/m"},
		{Rate{3, time.Second}, 333333334 * time.Nanosecond, "3/s"}, // rounded up: never faster than the rate
		{Rate{}, 0, ""},
	}
	for _, c := range cases {
		if got := c.r.Interval(); got != c.interval {
			t.Errorf("%v.Interval() = %s, want %s", c.r, got, c.interval)
		}
		if got := c.r.String(); got != c.str {
			t.Errorf("String() = %q, want %q", got, c.str)
		}
	}
}
