package ratelog

import (
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"
)

// maxKeys bounds the keys a Burst counts apart in one interval; the
// others are counted together under otherKey.
const maxKeys = 100

// otherKey counts the reports of keys past maxKeys.
const otherKey = "(others)"

// Burst logs each report of one kind at ERROR, up to Max in an Interval;
// past that it counts them by key (a destination, say) and logs one
// summary line with the counts once the interval is over, at the next
// report or Flush. Nothing is dropped silently. The zero value is not
// usable; set Log, Max and Interval.
type Burst struct {
	Log      *slog.Logger
	Max      int
	Interval time.Duration
	// Summary is the summary line's message, and Key the name of its
	// counts by key ("destinations", say).
	Summary, Key string
	now          func() time.Time // time.Now unless a test sets it

	mu      sync.Mutex
	start   time.Time // of the current interval
	logged  int       // lines in the current interval
	held    map[string]int
	heldAll int
}

// Error logs msg with args at ERROR, or counts it under key when the
// interval has had Max lines already.
func (b *Burst) Error(key, msg string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.roll(false)
	if b.logged < b.Max {
		b.logged++
		b.Log.Error(msg, args...)
		return
	}
	if b.held == nil {
		b.held = map[string]int{}
	}
	if _, ok := b.held[key]; !ok && len(b.held) >= maxKeys {
		key = otherKey
	}
	b.held[key]++
	b.heldAll++
}

// Flush logs the summary of the reports held back once their interval is
// over; with now set, at once (at shutdown).
func (b *Burst) Flush(now bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.roll(now)
}

// roll ends the interval when it is over (or force), logging its summary.
func (b *Burst) roll(force bool) {
	t := time.Now()
	if b.now != nil {
		t = b.now()
	}
	if !force && t.Sub(b.start) < b.Interval {
		return
	}
	if b.heldAll > 0 {
		keys := slices.Sorted(maps.Keys(b.held))
		counts := make([]any, 0, len(keys))
		for _, k := range keys {
			counts = append(counts, slog.Int(k, b.held[k]))
		}
		b.Log.Error(b.Summary, "not_logged", b.heldAll, "logged", b.logged,
			"interval", b.Interval.String(), slog.Group(b.Key, counts...))
	}
	b.start, b.logged, b.held, b.heldAll = t, 0, nil, 0
}
