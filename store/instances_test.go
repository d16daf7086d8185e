package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/store"
)

var billingCRM = []route.Destination{
	{Name: "billing", Filter: route.Filter{Types: []string{"invoice.*", "charge.refunded"}, Livemode: route.Live}},
	{Name: "crm", Filter: route.Filter{Livemode: route.Both}},
}

// TestInstanceDestinationsRecord: an instance records its set (replacing
// what it had), refreshes its heartbeat, and forgets it; rows read back
// with their filters; an old heartbeat reads as not live, and is pruned.
func TestInstanceDestinationsRecord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Postgres(t)
	s := store.New(pool)
	if err := s.RecordDestinations(ctx, "host:1", []route.Destination{{Name: "old"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordDestinations(ctx, "host:1", billingCRM); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordDestinations(ctx, "host:2", billingCRM[1:]); err != nil {
		t.Fatal(err)
	}
	rows, err := s.InstanceDestinations(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0].Instance != "host:1" || rows[0].Destination.Name != "billing" || rows[2].Instance != "host:2" {
		t.Fatalf("rows: %+v", rows)
	}
	b := rows[0]
	if !slices.Equal(b.Destination.Filter.Types, billingCRM[0].Filter.Types) || b.Destination.Filter.Livemode != route.Live || !b.Live ||
		b.Fingerprint != store.SetFingerprint(billingCRM) {
		t.Errorf("billing read back as %+v", b)
	}
	if c := rows[1]; c.Destination.Filter.Types != nil || c.Destination.Filter.Livemode != route.Both || c.Fingerprint != b.Fingerprint {
		t.Errorf("crm read back as %+v", c)
	}
	if rows[2].Fingerprint == b.Fingerprint {
		t.Error("two different sets have one fingerprint")
	}

	// host:2 crashed a day ago: not live, and pruned.
	if _, err := pool.Exec(ctx, `UPDATE oncehook_instance_destinations SET heartbeat_at = now() - interval '25 hours' WHERE instance = 'host:2'`); err != nil {
		t.Fatal(err)
	}
	rows, _ = s.InstanceDestinations(ctx, time.Minute)
	if rows[2].Live || !rows[0].Live {
		t.Errorf("liveness: %+v", rows)
	}
	if n, err := s.HeartbeatDestinations(ctx, "host:1"); err != nil || n != 2 {
		t.Errorf("heartbeat of host:1: %d, %v; want its 2 rows", n, err)
	}
	if n, err := s.PruneInstances(ctx, 24*time.Hour); err != nil || n != 1 {
		t.Errorf("prune: %d, %v; want host:2's row", n, err)
	}
	if n, err := s.HeartbeatDestinations(ctx, "host:2"); err != nil || n != 0 {
		t.Errorf("heartbeat of a pruned instance: %d, %v; want 0 (record again)", n, err)
	}
	if err := s.ForgetInstance(ctx, "host:1"); err != nil {
		t.Fatal(err)
	}
	if rows, err := s.InstanceDestinations(ctx, time.Minute); err != nil || len(rows) != 0 {
		t.Errorf("after forgetting: %+v, %v", rows, err)
	}
}

// TestSetFingerprint: the order of destinations and of patterns, and
// "*" against no types, do not matter; names, patterns and livemode do.
func TestSetFingerprint(t *testing.T) {
	t.Parallel()
	a := store.SetFingerprint(billingCRM)
	same := []route.Destination{
		{Name: "crm", Filter: route.Filter{Types: []string{"*"}}},
		{Name: "billing", Filter: route.Filter{Types: []string{"charge.refunded", "invoice.*"}, Livemode: route.Live}},
	}
	if got := store.SetFingerprint(same); got != a {
		t.Errorf("the same set reordered: %s, want %s", got, a)
	}
	for _, other := range [][]route.Destination{
		billingCRM[:1],
		{billingCRM[0], {Name: "crm", Filter: route.Filter{Livemode: route.Test}}},
		{billingCRM[0], {Name: "crm2"}},
		{{Name: "billing", Filter: route.Filter{Types: []string{"invoice.*"}, Livemode: route.Live}}, billingCRM[1]},
	} {
		if store.SetFingerprint(other) == a {
			t.Errorf("%+v has the fingerprint of %+v", other, billingCRM)
		}
	}
}
