package service

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/store"
)

// TestTimelineWatchFollowsALowerTimeline: the database moves to another
// cluster on a lower timeline (pg_upgrade, a restore) while the instance
// runs, and that cluster is then promoted, twice over. The watch follows
// the lower timeline (the keys move, the record goes down) so that each
// promotion that follows is a rise: forgotten, and recorded as a failover
// to heal, even where the timeline it reaches was recorded (and healed)
// before in the other cluster's history. It used to keep the highest
// timeline it had seen, and ignored them.
func TestTimelineWatchFollowsALowerTimeline(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ctx := context.Background()
	st := store.New(pool)
	w := newTimelineWatch(slog.New(slog.NewTextHandler(io.Discard, nil)), metrics.New(), time.Hour, true)
	var epochs []string
	w.subscribe(func(e string) { epochs = append(epochs, e) })
	observe := func(tl int64) {
		t.Helper()
		if err := w.observe(ctx, pool, tl); err != nil {
			t.Fatalf("observing timeline %d: %v", tl, err)
		}
	}
	for _, tl := range []int64{4, 1, 2} {
		observe(tl)
	}
	fos, err := st.Failovers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(fos) != 1 || fos[0].OldTimeline != 1 || fos[0].NewTimeline != 2 {
		t.Fatalf("failovers %+v, want one from timeline 1 to 2", fos)
	}
	first := fos[0]
	if _, err := st.MarkFailoverHealed(ctx, 2); err != nil {
		t.Fatal(err)
	}
	observe(1) // another cluster again
	observe(2) // and its promotion
	if want := []string{"", "t4:", "", "t2:", "", "t2:"}; !slices.Equal(epochs, want) {
		t.Errorf("epochs %q, want %q", epochs, want)
	}
	fos, err = st.Failovers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(fos) != 1 || !fos[0].HealedAt.IsZero() || !fos[0].DetectedAt.After(first.DetectedAt) {
		t.Fatalf("failovers %+v after the second promotion to timeline 2, want it recorded anew, not healed (the first: %+v)", fos, first)
	}
}
