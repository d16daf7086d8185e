package receiver

import "sync/atomic"

// bodyBudget bounds the bytes that request bodies in flight hold, across
// all connections. take never waits: a body that does not fit is answered
// 503 by the caller.
type bodyBudget struct {
	limit int64
	used  atomic.Int64
}

// take charges n bytes, or reports false and charges nothing.
func (b *bodyBudget) take(n int) bool {
	for {
		u := b.used.Load()
		if u+int64(n) > b.limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+int64(n)) {
			return true
		}
	}
}

// give returns n bytes that take charged.
func (b *bodyBudget) give(n int) { b.used.Add(-int64(n)) }
