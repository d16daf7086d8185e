package eventually

import (
	"testing"
	"time"
)

const (
	firstPoll = time.Millisecond
	maxPoll   = 50 * time.Millisecond
)

// Require polls cond until it returns true and fails the test with t.Fatalf
// if timeout passes first. The message names what was awaited; diag, when
// given, is called once at the timeout and its text is added to the message.
func Require(t testing.TB, timeout time.Duration, what string, cond func() bool, diag ...func() string) {
	t.Helper()
	if Within(timeout, cond) {
		return
	}
	t.Fatalf("timed out after %s waiting for %s%s", timeout, what, diagnose(diag))
}

// RequireNoError polls f until it returns nil and fails the test with
// t.Fatalf if timeout passes first, reporting f's last error.
func RequireNoError(t testing.TB, timeout time.Duration, what string, f func() error, diag ...func() string) {
	t.Helper()
	var last error
	if Within(timeout, func() bool { last = f(); return last == nil }) {
		return
	}
	t.Fatalf("timed out after %s waiting for %s: last error: %v%s", timeout, what, last, diagnose(diag))
}

// Within polls cond until it returns true or timeout passes, and reports
// whether it returned true. cond is always called at least once, and once
// more at the timeout, so a condition that becomes true while the poller
// waits is never missed. It is for the tests that must handle a timeout
// themselves; most want Require.
func Within(timeout time.Duration, cond func() bool) bool {
	if cond() {
		return true
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	poll := time.NewTimer(firstPoll)
	defer poll.Stop()
	wait := firstPoll
	for {
		select {
		case <-deadline.C:
			return cond()
		case <-poll.C:
			if cond() {
				return true
			}
			wait = min(2*wait, maxPoll)
			poll.Reset(wait)
		}
	}
}

func diagnose(diag []func() string) string {
	s := ""
	for _, d := range diag {
		if d != nil {
			s += "\n" + d()
		}
	}
	return s
}
