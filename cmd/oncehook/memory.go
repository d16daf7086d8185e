package main

import (
	"log/slog"
	"os"
	"runtime/debug"
	"syscall"
)

// The memory bound, in bytes: what the process holds at most with the
// configured limits. docs/high-availability.md#sizing gives the same formula.
const (
	baseBytes       = 64 << 20 // runtime, pools, buffers, metrics
	perConnBytes    = 20 << 10 // an active connection: read buffer, request, body prefetch, stack
	heldResultBytes = 10 << 20 // delivery results kept while Postgres is down
	recentIDBytes   = 100      // one of DEDUP_RECENT_IDS: the id, its time, the map's share
)

// memoryBound is base + MAX_CONNECTIONS × 20 KiB + MAX_INFLIGHT_BODY_BYTES
// + QUEUE_MAX_BYTES + D × MAX_BODY_BYTES (each of the D destinations'
// sweepers may pass its share by one event) + held results
// + DEDUP_RECENT_IDS × 100 bytes.
func memoryBound(c config) int64 {
	d := int64(max(1, len(c.Destinations)))
	return baseBytes + int64(c.MaxConnections)*perConnBytes + int64(c.MaxInflightBytes) +
		int64(c.QueueMaxBytes) + d*int64(c.MaxBodyBytes) + heldResultBytes + int64(c.DedupRecentIDs)*recentIDBytes
}

// limitMemory makes the memory bound the Go runtime's soft limit, unless
// GOMEMLIMIT sets one: with GOGC at 250 the heap could otherwise grow to
// 3.5 times what is live before a collection.
func limitMemory(c config, log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	bound := memoryBound(c)
	debug.SetMemoryLimit(bound)
	log.Info("memory bound", "bytes", bound, "mib", bound>>20)
}

// checkFileLimit warns when the open-file limit cannot hold MAX_CONNECTIONS
// and the process's own connections. (Go raises the soft limit to the hard
// one at start.)
func checkFileLimit(c config, log *slog.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	if need := uint64(c.MaxConnections) + 256; lim.Cur < need {
		log.Warn("the open-file limit is below MAX_CONNECTIONS plus 256 for Postgres, Redis and sinks; raise it (ulimit -n) or lower MAX_CONNECTIONS",
			"limit", lim.Cur, "max_connections", c.MaxConnections)
	}
}
