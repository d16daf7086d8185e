package eventually

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeTB records a failure instead of ending the test, so the failures of
// Require itself can be checked.
type fakeTB struct {
	testing.TB
	failed string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) { f.failed = fmt.Sprintf(format, args...) }

func TestRequireReportsAConditionThatNeverHolds(t *testing.T) {
	f := &fakeTB{TB: t}
	start := time.Now()
	Require(f, 50*time.Millisecond, "the flag to be set", func() bool { return false },
		func() string { return "flag is still clear" })
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Errorf("Require gave up after %s, before its 50ms timeout", el)
	}
	for _, want := range []string{"timed out after 50ms", "the flag to be set", "flag is still clear"} {
		if !strings.Contains(f.failed, want) {
			t.Errorf("failure %q does not say %q", f.failed, want)
		}
	}
}

func TestRequireReturnsOnceTheConditionHolds(t *testing.T) {
	f := &fakeTB{TB: t}
	var calls atomic.Int32
	Require(f, 5*time.Second, "the third call", func() bool { return calls.Add(1) >= 3 })
	if f.failed != "" {
		t.Fatalf("Require failed: %s", f.failed)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("cond called %d times, want 3 (it must stop once cond holds)", n)
	}
}

func TestRequireNoErrorReportsTheLastError(t *testing.T) {
	f := &fakeTB{TB: t}
	var calls atomic.Int32
	RequireNoError(f, 30*time.Millisecond, "the server", func() error {
		return fmt.Errorf("attempt %d: %w", calls.Add(1), errors.New("connection refused"))
	})
	last := fmt.Sprintf("attempt %d: connection refused", calls.Load())
	if !strings.Contains(f.failed, "the server") || !strings.Contains(f.failed, last) {
		t.Errorf("failure %q does not name the server and the last error %q", f.failed, last)
	}
}

func TestWithinSeesAConditionThatTurnsTrueAtTheTimeout(t *testing.T) {
	start := time.Now()
	ok := Within(20*time.Millisecond, func() bool { return time.Since(start) >= 20*time.Millisecond })
	if !ok {
		t.Error("Within reported false for a condition true at its timeout")
	}
}
