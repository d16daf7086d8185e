package delivery

import (
	"testing"
	"time"
)

func TestPrunerRestKeepsItsDuty(t *testing.T) {
	for _, c := range []struct {
		took time.Duration
		duty float64
		want time.Duration
	}{
		{20 * time.Millisecond, 1, 0},
		{20 * time.Millisecond, 0.5, 20 * time.Millisecond},
		{20 * time.Millisecond, 0.25, 60 * time.Millisecond},
		{20 * time.Millisecond, 0.01, 1980 * time.Millisecond},
	} {
		if got := rest(c.took, c.duty); got.Round(time.Microsecond) != c.want {
			t.Errorf("rest(%v, %v) = %v, want %v", c.took, c.duty, got, c.want)
		}
	}
}
