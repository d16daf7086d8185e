package store_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/oncehook/oncehook/store"
)

// TestDeadLetterCounts counts each configured destination's dead letters
// (0 without any) and those of a destination no longer configured.
func TestDeadLetterCounts(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t)
	ctx := context.Background()
	in := insert(t, st, routes(t, "billing", "gone", "crm"), time.Hour, "evt_a", "evt_b", "evt_c")
	var results []store.Result
	for _, i := range in {
		for _, dest := range []string{"billing", "gone", "crm"} {
			ok := dest == "crm" || (dest == "billing" && i.ID == "evt_c")
			results = append(results, store.Result{EventID: i.ID, Destination: dest, Lease: i.Lease, MaxAttempts: 1, OK: ok, Err: "sink down"})
		}
	}
	if _, err := st.WriteResults(ctx, results, store.Backoff{Base: time.Second, Max: time.Second}, "test"); err != nil {
		t.Fatal(err)
	}
	got, err := st.DeadLetterCounts(ctx, []string{"billing", "crm", "new"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"billing": 2, "gone": 3, "crm": 0, "new": 0}
	if !maps.Equal(got, want) {
		t.Fatalf("DeadLetterCounts = %v, want %v", got, want)
	}
}
