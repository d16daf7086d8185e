package store_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/oncehook/oncehook/store"
)

// A dead head lets its key's next event go, and ShowEvent says that the
// key skipped it; a delivered or unkeyed delivery says nothing of the kind.
func TestShowEventSaysTheKeySkippedADeadDelivery(t *testing.T) {
	t.Parallel()
	st, pool := newStore(t)
	insertKeyed(t, st, orderedRoutes(t), keyed{"evt_s1", "in_\n1", 1}, keyed{"evt_s2", "in_\n1", 2}, keyed{"evt_su", "", 3})
	if got := claimIDs(t, st, 5); !slices.Equal(got, []string{"evt_s1/in_\n1"}) {
		t.Fatalf("claimed %q, want the key's head alone", got)
	}
	finish(t, st, pool, "evt_s1", false, 1) // dead at its first failure
	if got := claimIDs(t, st, 5); !slices.Equal(got, []string{"evt_s2/in_\n1"}) {
		t.Fatalf("claimed %q after the head went dead, want the key's next event", got)
	}
	finish(t, st, pool, "evt_s2", true, 1)

	show := func(id string) store.EventRow {
		t.Helper()
		ev, err := st.ShowEvent(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(ev.Deliveries) != 1 {
			t.Fatalf("%s: deliveries %+v, want one", id, ev.Deliveries)
		}
		return ev.Deliveries[0]
	}
	dead := show("evt_s1")
	if dead.Status != store.StatusDead || dead.OrderKey != "in_\n1" || !dead.KeySkipped {
		t.Fatalf("dead head: %+v; want dead, key in_\\n1, skipped", dead)
	}
	if note := dead.KeySkipNote(); note != `order key "in_\n1" skipped it: the key's later events go on without it` || strings.Contains(note, "\n") {
		t.Fatalf("note %q", note)
	}
	if d := show("evt_s2"); d.OrderKey != "in_\n1" || d.KeySkipped || d.KeySkipNote() != "" {
		t.Fatalf("delivered event of the key: %+v; want its key, not skipped", d)
	}
	if d := show("evt_su"); d.OrderKey != "" || d.KeySkipped {
		t.Fatalf("unkeyed event: %+v; want no key", d)
	}
}
