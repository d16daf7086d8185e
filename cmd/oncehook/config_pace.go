package main

import (
	"fmt"

	"github.com/oncehook/oncehook/pace"
)

// rate reads a destination's RATE: N/s, N/m or N/h; unset is no limit.
func (e *env) rate(name string) pace.Rate {
	v := e.get(name)
	if v == "" {
		return pace.Rate{}
	}
	r, err := pace.ParseRate(v)
	if err != nil {
		e.fail(name, "%v (the deployment's deliveries to the destination, at most %d/s)", err, pace.MaxPerSecond)
		return pace.Rate{}
	}
	return r
}

// inFlight is MAX_IN_FLIGHT as printed: empty when unbounded.
func inFlight(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprint(n)
}
