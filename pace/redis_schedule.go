package pace

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// reserveScript takes the next slot of a destination's schedule, by Redis's
// clock, if it comes within the caller's longest wait. The key holds the
// schedule's next free slot (µs since the epoch); each reservation moves
// it one interval on, so slots are one interval apart across every
// instance (GCRA without a burst). The key expires once that slot has
// passed, which leaves a schedule that nobody uses empty.
//
// KEYS[1] the destination's schedule (scheduleKey).
// ARGV[1] the interval between deliveries, in µs; ARGV[2] the longest
// wait the caller accepts, in µs.
// Returns {1, wait}: reserved, the slot is wait µs away (0: now); or
// {0, wait}: not reserved, the next free slot is wait µs away, more than
// ARGV[2].
var reserveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < now then slot = now end
local wait = slot - now
if wait > tonumber(ARGV[2]) then return {0, wait} end
local free = slot + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.0f', free), 'PX', math.floor((free - now) / 1000) + 1000)
return {1, wait}`)

// scheduleKey is the one place a destination's Redis key is made. One key
// per destination: single-slot on Redis Cluster.
func scheduleKey(prefix, destination string) string { return prefix + "rate:" + destination }

// reserveRedis runs reserveScript: the wait for the slot it reserved, or
// ok false and the wait for the next free slot when that is past maxWait.
func reserveRedis(ctx context.Context, rdb redis.Scripter, key string, interval, maxWait time.Duration) (wait time.Duration, ok bool, err error) {
	res, err := reserveScript.Run(ctx, rdb, []string{key}, ceilMicros(interval), max(0, maxWait.Microseconds())).Int64Slice()
	if err != nil {
		return 0, false, err
	}
	if len(res) != 2 {
		return 0, false, fmt.Errorf("rate script returned %d values, want 2", len(res))
	}
	return time.Duration(res[1]) * time.Microsecond, res[0] == 1, nil
}

// ceilMicros is d in whole microseconds, rounded up.
func ceilMicros(d time.Duration) int64 { return int64((d + time.Microsecond - 1) / time.Microsecond) }
