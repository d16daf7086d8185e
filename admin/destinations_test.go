package admin_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/oncehook/oncehook/admin"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/store"
)

var (
	billing = route.Destination{Name: "billing", Filter: route.Filter{Types: []string{"invoice.*"}, Livemode: route.Both}}
	crm     = route.Destination{Name: "crm", Filter: route.Filter{Livemode: route.Both}}
	other   = route.Destination{Name: "analytics", Filter: route.Filter{Livemode: route.Both}}
)

// TestResolve: the set a command routes by is the running instances'
// record; an environment that names another set is refused, naming the
// difference, unless forced; with no live record it is the environment's,
// and it says so; instances that disagree are refused.
func TestResolve(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Postgres(t)
	s := store.New(pool)
	a := admin.New(s)
	env := []route.Destination{billing, other}

	// No instance ever ran.
	res, err := a.Resolve(ctx, admin.ResolveParams{Env: env, EnvSet: true})
	if err != nil || res.Source != admin.FromEnvironment || len(res.Destinations) != 2 ||
		!strings.Contains(res.Note, "no running instance has recorded its destinations") {
		t.Fatalf("no record: %+v, %v", res, err)
	}

	// Two instances serve billing and crm.
	for _, in := range []string{"host:1", "host:2"} {
		if err := s.RecordDestinations(ctx, in, []route.Destination{crm, billing}); err != nil {
			t.Fatal(err)
		}
	}
	res, err = a.Resolve(ctx, admin.ResolveParams{Env: []route.Destination{{Name: "default"}}})
	if err != nil || res.Source != admin.FromRecord || res.Note != "" || strings.Join(routeNames(res.Destinations), ",") != "billing,crm" {
		t.Fatalf("the environment names no set: %+v, %v", res, err)
	}
	table, err := res.Table()
	if err != nil || strings.Join(table.Match(nil, "invoice.paid", true), ",") != "billing,crm" || strings.Join(table.Match(nil, "charge.x", false), ",") != "crm" {
		t.Fatalf("the record's table routes wrongly: %v", err)
	}
	// The same set, written otherwise.
	same := []route.Destination{billing, {Name: "crm", Filter: route.Filter{Types: []string{"*"}}}}
	if res, err := a.Resolve(ctx, admin.ResolveParams{Env: same, EnvSet: true}); err != nil || res.Source != admin.FromRecord {
		t.Fatalf("the same set: %+v, %v", res, err)
	}
	// Another set: refused, naming what differs.
	_, err = a.Resolve(ctx, admin.ResolveParams{Env: env, EnvSet: true})
	var mismatch *admin.SetMismatchError
	if !errors.As(err, &mismatch) {
		t.Fatalf("another set: %v, want a SetMismatchError", err)
	}
	for _, want := range []string{"here billing,analytics, there billing,crm", "analytics is not served by them", "crm is missing here", "--force", "host:1, host:2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal %q does not say %q", err, want)
		}
	}
	narrower := []route.Destination{{Name: "billing", Filter: route.Filter{Types: []string{"invoice.paid"}}}, crm}
	if _, err := a.Resolve(ctx, admin.ResolveParams{Env: narrower, EnvSet: true}); err == nil || !strings.Contains(err.Error(), "billing takes invoice.paid here, invoice.* there") {
		t.Errorf("another filter: %v", err)
	}
	// Forced from an environment that names no set (its set would be the
	// implicit default, served by nobody): refused.
	if _, err := a.Resolve(ctx, admin.ResolveParams{Env: []route.Destination{{Name: "default"}}, Force: true}); err == nil ||
		!strings.Contains(err.Error(), "names none") {
		t.Errorf("--force with no DESTINATIONS: %v, want a refusal", err)
	}
	// Forced: the environment's, and it says so.
	res, err = a.Resolve(ctx, admin.ResolveParams{Env: env, EnvSet: true, Force: true})
	if err != nil || res.Source != admin.FromEnvironment || !strings.Contains(res.Note, "--force") || res.Destinations[1].Name != "analytics" {
		t.Fatalf("forced: %+v, %v", res, err)
	}

	// A rolling change: host:2 now serves crm alone.
	if err := s.RecordDestinations(ctx, "host:2", []route.Destination{crm}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Resolve(ctx, admin.ResolveParams{Env: env}); !errors.Is(err, admin.ErrMixedSets) ||
		!strings.Contains(err.Error(), "billing,crm (host:1); crm (host:2)") {
		t.Fatalf("mixed sets: %v", err)
	}
	rec, err := a.Record(ctx)
	if err != nil || !rec.Mixed() || strings.Join(rec.Served(), ",") != "billing,crm" {
		t.Fatalf("record: %+v, %v", rec, err)
	}

	// Both crash: their heartbeats grow old.
	if _, err := pool.Exec(ctx, `UPDATE oncehook_instance_destinations SET heartbeat_at = now() - interval '10 minutes'`); err != nil {
		t.Fatal(err)
	}
	res, err = a.Resolve(ctx, admin.ResolveParams{Env: env, EnvSet: true})
	if err != nil || res.Source != admin.FromEnvironment || !strings.Contains(res.Note, "no running instance (the last heartbeat, of host:") {
		t.Fatalf("all gone: %+v, %v", res, err)
	}
}

func routeNames(ds []route.Destination) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Name
	}
	return out
}

// TestRegistration: Start records the set, the heartbeat keeps it fresh
// (and records it again when it went missing), Stop removes it; both are
// idempotent.
func TestRegistration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Postgres(t)
	s := store.New(pool)
	a := admin.New(s)
	if _, err := admin.NewRegistration(admin.RegistrationConfig{Store: s}); err == nil {
		t.Error("a registration of no destinations")
	}
	if _, err := admin.NewRegistration(admin.RegistrationConfig{Store: s, Destinations: []route.Destination{crm}, Interval: time.Minute}); err == nil {
		t.Error("a heartbeat rarer than LiveWithin allows")
	}
	reg, err := admin.NewRegistration(admin.RegistrationConfig{Store: s, Instance: "host:7", Destinations: []route.Destination{billing, crm},
		Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := reg.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := a.Record(ctx)
	if err != nil || len(rec.Live) != 1 || rec.Live[0].Instance != "host:7" || strings.Join(rec.Live[0].Names(), ",") != "billing,crm" {
		t.Fatalf("after Start: %+v, %v", rec, err)
	}
	var first time.Time
	if err := pool.QueryRow(ctx, `SELECT min(heartbeat_at) FROM oncehook_instance_destinations`).Scan(&first); err != nil {
		t.Fatal(err)
	}
	// Someone removes the record: the next heartbeat writes it again.
	if _, err := pool.Exec(ctx, `DELETE FROM oncehook_instance_destinations`); err != nil {
		t.Fatal(err)
	}
	var n int
	eventually.Require(t, 10*time.Second, "the heartbeat to record the set again", func() bool {
		var beat time.Time
		err = pool.QueryRow(ctx, `SELECT count(*), COALESCE(min(heartbeat_at), 'epoch') FROM oncehook_instance_destinations`).Scan(&n, &beat)
		return err == nil && n == 2 && beat.After(first)
	}, func() string { return fmt.Sprintf("%d rows, %v", n, err) })
	for range 2 {
		if err := reg.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if rec, err := a.Record(ctx); err != nil || len(rec.Live)+len(rec.Gone) != 0 {
		t.Fatalf("after Stop: %+v, %v", rec, err)
	}
	if err := reg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if rec, _ := a.Record(ctx); len(rec.Live) != 0 {
		t.Fatal("Start after Stop recorded the set again")
	}
}

// TestUnservedAndOverview: pending deliveries to a destination that no
// running instance serves are counted; the overview marks each
// destination configured (every instance serves it), partial (some do)
// or orphaned (none does).
func TestUnservedAndOverview(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Postgres(t)
	s := store.New(pool)
	a := admin.New(s)
	if _, err := pool.Exec(ctx, `INSERT INTO stripe_webhook_events (event_id, event_type, payload, status)
		SELECT format('evt_u_%s', i), 'invoice.paid', '{}', 'routed' FROM generate_series(1, 5) i`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO stripe_webhook_deliveries (event_id, destination, status)
		SELECT event_id, d, CASE WHEN d = 'crm' THEN 'delivered' ELSE 'pending' END FROM stripe_webhook_events,
			unnest(ARRAY['billing', 'crm', 'old']) d`); err != nil {
		t.Fatal(err)
	}
	// No record: the fallback is what is served.
	if n, err := a.Unserved(ctx, []string{"billing", "crm"}); err != nil || n != 5 {
		t.Fatalf("unserved with no record: %d, %v; want old's 5", n, err)
	}
	if err := s.RecordDestinations(ctx, "host:1", []route.Destination{billing, crm}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordDestinations(ctx, "host:2", []route.Destination{crm}); err != nil {
		t.Fatal(err)
	}
	if n, err := a.Unserved(ctx, nil); err != nil || n != 5 {
		t.Fatalf("unserved: %d, %v; want old's 5", n, err)
	}
	rec, err := a.Record(ctx)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := a.Overview(ctx, admin.Resolution{Destinations: rec.Sets()[0][0].Destinations, Source: admin.FromRecord, Record: rec})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range infos {
		got = append(got, d.Name+"="+d.State)
	}
	if strings.Join(got, " ") != "billing=partial crm=configured old=orphaned" {
		t.Fatalf("overview: %v", got)
	}
	if infos[0].Pending != 5 || infos[1].Delivered != 5 || strings.Join(infos[1].Instances, ",") != "host:1,host:2" {
		t.Errorf("overview counts: %+v", infos)
	}
	backlogs, _, err := a.Backlogs(ctx, nil)
	if err != nil || len(backlogs) != 3 || !backlogs[0].Configured || backlogs[2].Configured || backlogs[2].Pending != 5 {
		t.Fatalf("backlogs: %+v, %v", backlogs, err)
	}
}
