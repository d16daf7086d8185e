// Package ratelog bounds repeated log lines. Logger logs a repeated fault
// at most once per interval, with a count of the reports it held back;
// Burst logs each report up to a number per interval and summarises the
// rest in one line, so that none goes unreported.
package ratelog

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// Interval is the least time between two lines of one Logger.
const Interval = 10 * time.Second

// Logger rate-limits one kind of warning. The zero value is not usable;
// set Log.
type Logger struct {
	Log        *slog.Logger
	last       atomic.Int64 // unix nanos of the last line
	suppressed atomic.Int64
}

// Warn logs msg with args unless a line was logged less than Interval ago.
func (l *Logger) Warn(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := l.last.Load()
	if now-last < int64(Interval) || !l.last.CompareAndSwap(last, now) {
		l.suppressed.Add(1)
		return
	}
	l.Log.Warn(msg, append(args, "suppressed_since_last", l.suppressed.Swap(0))...)
}
