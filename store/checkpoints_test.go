package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/store"
)

func TestCheckpointMovesOnlyForwardAndOnlyFromItsWindow(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, ok, err := st.Checkpoint(ctx, "all"); ok || err != nil {
		t.Fatalf("a new database has a checkpoint: %v %v", ok, err)
	}
	if saved, err := st.SaveCheckpoint(ctx, store.CheckpointSave{Listing: "all", Since: t0, Through: t0.Add(time.Hour)}); saved || err != nil {
		t.Fatalf("a first checkpoint was written without First: %v %v", saved, err)
	}
	if saved, err := st.SaveCheckpoint(ctx, store.CheckpointSave{Listing: "all", Since: t0, Through: t0.Add(time.Hour), First: true}); !saved || err != nil {
		t.Fatalf("first checkpoint: %v %v", saved, err)
	}
	// A window starting after the checkpoint leaves it, unless it joins.
	gap := store.CheckpointSave{Listing: "all", Since: t0.Add(2 * time.Hour), Through: t0.Add(3 * time.Hour)}
	if saved, err := st.SaveCheckpoint(ctx, gap); saved || err != nil {
		t.Fatalf("a window past a gap moved the checkpoint: %v %v", saved, err)
	}
	gap.Joins = true
	if saved, err := st.SaveCheckpoint(ctx, gap); !saved || err != nil {
		t.Fatalf("a joining window: %v %v", saved, err)
	}
	// Never back.
	if _, err := st.SaveCheckpoint(ctx, store.CheckpointSave{Listing: "all", Since: t0, Through: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	through, ok, err := st.Checkpoint(ctx, "all")
	if !ok || err != nil || !through.Equal(t0.Add(3*time.Hour)) {
		t.Fatalf("checkpoint %v %v %v, want %v", through, ok, err, t0.Add(3*time.Hour))
	}
	if recent, err := st.CheckpointMovedWithin(ctx, "all", time.Minute); !recent || err != nil {
		t.Fatalf("moved within a minute: %v %v", recent, err)
	}
	if recent, err := st.CheckpointMovedWithin(ctx, "other", time.Minute); recent || err != nil {
		t.Fatalf("a listing with no checkpoint moved recently: %v %v", recent, err)
	}
}

func TestOneLeaderAtATime(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	a, b := store.New(pool), store.New(testenv.AnotherPool(t, pool))
	ctx := context.Background()
	key := "leader-" + testenv.RandomHex(8)
	release, ok, err := a.TryLead(ctx, key)
	if !ok || err != nil {
		t.Fatalf("first leader: %v %v", ok, err)
	}
	if _, ok, err := b.TryLead(ctx, key); ok || err != nil {
		t.Fatalf("a second leader while the first leads: %v %v", ok, err)
	}
	release()
	release2, ok, err := b.TryLead(ctx, key)
	if !ok || err != nil {
		t.Fatalf("after release: %v %v", ok, err)
	}
	release2()
}
