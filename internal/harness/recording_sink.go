package harness

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/eventually"
)

// RecordingSink is a Sink that counts deliveries per event id. Set Fail to
// make calls fail.
type RecordingSink struct {
	mu     sync.Mutex
	counts map[string]int
	Fail   func(ev *event.Event) error
}

// NewRecordingSink returns an empty RecordingSink.
func NewRecordingSink() *RecordingSink { return &RecordingSink{counts: map[string]int{}} }

// Deliver records ev unless Fail says otherwise.
func (s *RecordingSink) Deliver(_ context.Context, ev *event.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Fail != nil {
		if err := s.Fail(ev); err != nil {
			return err
		}
	}
	s.counts[ev.ID]++
	return nil
}

// Close does nothing.
func (s *RecordingSink) Close() error { return nil }

// Counts returns a copy of the deliveries per id.
func (s *RecordingSink) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

// WaitFor waits until cond holds for the counts, failing the test after timeout.
func (s *RecordingSink) WaitFor(t testing.TB, timeout time.Duration, cond func(map[string]int) bool) map[string]int {
	t.Helper()
	var c map[string]int
	eventually.Require(t, timeout, "the sink's deliveries to meet the condition", func() bool {
		c = s.Counts()
		return cond(c)
	}, func() string { return fmt.Sprintf("deliveries: %d ids", len(c)) })
	return c
}

// ErrSinkDown is what a failing RecordingSink returns in tests.
var ErrSinkDown = errors.New("sink down")
