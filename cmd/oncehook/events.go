package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/admin"
	"github.com/oncehook/oncehook/internal/redact"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/store"
)

// stderr receives the commands' notes: where their destination set came
// from, and warnings.
var stderr io.Writer = os.Stderr

// The events and replay commands need only DATABASE_URL; the receiver need
// not be running.

func adminPool(ctx context.Context) (*pgxpool.Pool, error) {
	e := env{lookup: os.LookupEnv}
	url := e.databaseURL("DATABASE_URL")
	if err := errors.Join(e.errs...); err != nil {
		return nil, err
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", redact.Error(err, url))
	}
	return pool, nil
}

// parseSince reads --since: a duration back from now (24h) or a date
// (2026-01-02 or RFC 3339).
func parseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, time.DateOnly} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration like 24h or a date like 2026-01-02", v)
}

// openAdmin is the operator API on DATABASE_URL; close closes its pool.
func openAdmin(ctx context.Context) (a *admin.Admin, close func(), err error) {
	pool, err := adminPool(ctx)
	if err != nil {
		return nil, nil, err
	}
	return admin.New(store.New(pool)), pool.Close, nil
}

func checkStatus(s string) error {
	switch store.Status(s) {
	case "", store.StatusPending, store.StatusDelivered, store.StatusDead, store.StatusUnrouted:
		return nil
	}
	return fmt.Errorf("--status %q: want pending, delivered, dead or unrouted", s)
}

// configuredDestinations reads the destinations from the environment as
// the receiver does (DESTINATIONS, or SINK_URL as "default"); the commands
// need no other variable.
func configuredDestinations() ([]destinationConfig, error) {
	e := env{lookup: os.LookupEnv}
	c := config{Workers: 1, DeliveryTimeout: time.Second, DeliveryMaxAttempts: 1}
	dests := e.destinations(&c)
	if err := errors.Join(e.errs...); err != nil {
		return nil, err
	}
	return dests, nil
}

// envNamesDestinations reports whether this environment names a
// destination set (DESTINATIONS or SINK_URL), rather than leaving the
// default.
func envNamesDestinations() bool {
	return strings.TrimSpace(os.Getenv("DESTINATIONS")) != "" || os.Getenv("SINK_URL") != ""
}

// routes are the destinations' names and filters.
func routes(dests []destinationConfig) []route.Destination {
	out := make([]route.Destination, len(dests))
	for i, d := range dests {
		out[i] = route.Destination{Name: d.Name, Filter: d.Filter}
	}
	return out
}

// resolveDestinations is the destination set a command routes by: what
// the running instances recorded, or this environment's with --force or
// when none runs (said on stderr). It refuses an environment that names
// another set than the instances serve, and instances that disagree.
func resolveDestinations(ctx context.Context, a *admin.Admin, env []destinationConfig, force bool) (admin.Resolution, error) {
	res, err := a.Resolve(ctx, admin.ResolveParams{Env: routes(env), EnvSet: envNamesDestinations(), Force: force})
	if err != nil {
		return res, err
	}
	if res.Note != "" {
		fmt.Fprintln(stderr, "receiver:", res.Note)
	}
	return res, nil
}

func eventsCmd(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: receiver events list [--status S] [--destination NAME] [--type T] [--since D] [--limit N] [--json] | events show EVT_ID [--json]")
	}
	switch args[0] {
	case "list":
		return eventsList(ctx, args[1:], out)
	case "show":
		return eventsShow(ctx, args[1:], out)
	}
	return fmt.Errorf("unknown events command %q: want list or show", args[0])
}

func eventsList(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("events list", flag.ContinueOnError)
	status := fs.String("status", "", "pending, delivered, dead or unrouted (matched no destination)")
	dest := fs.String("destination", "", "only this destination's deliveries")
	typ := fs.String("type", "", "event type, such as invoice.paid, or a pattern such as invoice.*")
	since := fs.String("since", "", "received within this duration (24h) or since this date")
	limit := fs.Int("limit", 100, "at most this many rows, newest first")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("events list: unexpected argument %q", fs.Arg(0))
	}
	if err := checkStatus(*status); err != nil {
		return err
	}
	from, err := parseSince(*since, time.Now())
	if err != nil {
		return err
	}
	if *limit <= 0 {
		return fmt.Errorf("--limit %d: want a positive number", *limit)
	}
	p := admin.ListParams{Status: store.Status(*status), Destination: *dest, Since: from}
	if *typ != "" {
		p.Types = []string{*typ}
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("events list: %w", err)
	}
	a, closeAdmin, err := openAdmin(ctx)
	if err != nil {
		return err
	}
	defer closeAdmin()
	rows, err := a.ListDeliveries(ctx, p, *limit)
	if err != nil {
		return err
	}
	if *asJSON {
		if rows == nil {
			rows = []admin.EventRow{}
		}
		return writeJSON(out, rows)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EVENT ID\tTYPE\tDESTINATION\tSTATUS\tATTEMPTS\tRECEIVED\tSOURCE\tLAST ERROR")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.ID, r.Type, orDash(r.Destination), r.Status, r.Attempts,
			r.ReceivedAt.UTC().Format(time.RFC3339), sourceName(r.Source), shorten(r.LastError, 60))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "%d rows\n", len(rows))
	return nil
}

func eventsShow(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("events show", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: receiver events show EVT_ID [--json]")
	}
	a, closeAdmin, err := openAdmin(ctx)
	if err != nil {
		return err
	}
	defer closeAdmin()
	ev, err := a.Show(ctx, pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		if ev.History == nil {
			ev.History = []admin.Attempt{}
		}
		return writeJSON(out, struct {
			admin.Event
			Payload json.RawMessage `json:"payload"`
		}{ev, ev.Payload})
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id\t%s\ntype\t%s\nlivemode\t%v\nreceived\t%s\nsource\t%s\n", ev.ID, ev.Type, ev.Livemode,
		ev.ReceivedAt.UTC().Format(time.RFC3339), sourceName(ev.Source))
	_ = tw.Flush()
	fmt.Fprintf(out, "\ndeliveries (%d):\n", len(ev.Deliveries))
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  DESTINATION\tSTATUS\tATTEMPTS\tNEXT ATTEMPT\tDELIVERED\tLAST ERROR")
	for _, d := range ev.Deliveries {
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\t%s\n", orDash(d.Destination), d.Status, d.Attempts,
			timeOrDash(d.NextAttemptAt), timeOrDash(d.DeliveredAt), d.LastError)
	}
	_ = tw.Flush()
	fmt.Fprintf(out, "\nhistory (%d attempts):\n", len(ev.History))
	for _, a := range ev.History {
		result := "ok"
		if !a.OK {
			result = "failed: " + a.Error
		}
		fmt.Fprintf(out, "  %s  %s  %s  %s\n", a.At.UTC().Format(time.RFC3339Nano), a.Destination, a.Instance, result)
	}
	fmt.Fprintf(out, "\npayload:\n%s\n", ev.Payload)
	return nil
}

// sourceName is where an event came from, as the commands print it.
func sourceName(s string) string {
	if s == "" {
		return "webhook"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func replayCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	status := fs.String("status", "", "replay every delivery of this status: dead, or delivered (to send them all again)")
	since := fs.String("since", "", "received within this duration (24h) or since this date")
	dest := fs.String("destination", "", "only this destination; alone with --since, backfill it with the events it never had")
	force := fs.Bool("force", false, "route by this environment's destinations even where the running instances serve others")
	ids, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	usage := errors.New("usage: receiver replay EVT_ID... [--destination NAME [--force]] | receiver replay --status dead [--destination NAME] [--since D] | receiver replay --destination NAME --since D [--force]")
	backfill := len(ids) == 0 && *status == "" && *dest != ""
	switch {
	case len(ids) > 0 && *status != "":
		return usage
	case len(ids) == 0 && *status == "" && !backfill:
		return usage
	case backfill && *since == "":
		return errors.New("--destination without --status backfills the destination: give --since too")
	case *status != "" && *status != string(store.StatusDead) && *status != string(store.StatusDelivered):
		return fmt.Errorf("--status %q: want dead or delivered (pending deliveries are made anyway)", *status)
	case *status == string(store.StatusDelivered) && *since == "":
		return errors.New("--status delivered sends every stored delivered event again: give --since too")
	}
	from, err := parseSince(*since, time.Now())
	if err != nil {
		return err
	}
	var env []destinationConfig
	if backfill || *dest != "" && len(ids) > 0 {
		if env, err = configuredDestinations(); err != nil {
			return err
		}
	}
	a, closeAdmin, err := openAdmin(ctx)
	if err != nil {
		return err
	}
	defer closeAdmin()
	switch {
	case backfill:
		// Route by the set the running instances serve, as they would
		// have routed the events.
		res, err := resolveDestinations(ctx, a, env, *force)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(res.Destinations, func(d route.Destination) bool { return d.Name == *dest })
		if i < 0 {
			return fmt.Errorf("--destination %q is not configured (destinations of the %s: %s)", *dest, setSource(res),
				strings.Join(routeNames(res.Destinations), ", "))
		}
		target := res.Destinations[i]
		r, err := a.Replay(ctx, admin.ReplayParams{Backfill: &target.Filter, Destination: target.Name, Since: from})
		if err != nil {
			return fmt.Errorf("%w (%d events given to %s before the error)", err, r.Replayed, target.Name)
		}
		fmt.Fprintf(out, "%d events received since %s given to destination %s\n", r.Replayed, from.UTC().Format(time.RFC3339), target.Name)
		return nil
	case *status != "":
		r, err := a.Replay(ctx, admin.ReplayParams{Status: store.Status(*status), Destination: *dest, Since: from})
		if err != nil {
			return fmt.Errorf("%w (%d deliveries put back to pending before the error)", err, r.Replayed)
		}
		fmt.Fprintf(out, "%d %s deliveries put back to pending\n", r.Replayed, *status)
		warnUnserved(ctx, a, *dest)
		return nil
	}
	if *dest != "" {
		// A delivery is created where the event has none: only to a
		// destination that is served, or it would wait for good.
		res, err := resolveDestinations(ctx, a, env, *force)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(res.Destinations, func(d route.Destination) bool { return d.Name == *dest }) {
			return fmt.Errorf("--destination %q is not configured (destinations of the %s: %s)", *dest, setSource(res),
				strings.Join(routeNames(res.Destinations), ", "))
		}
	}
	r, err := a.Replay(ctx, admin.ReplayParams{IDs: ids, Destination: *dest, Create: *dest != ""})
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(r.IDs))
	for _, id := range r.IDs {
		seen[id] = true
		fmt.Fprintf(out, "%s put back to pending\n", id)
	}
	var missing []string
	for _, id := range ids {
		if !seen[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("unknown event ids, or events with no delivery to replay (give --destination): %s", strings.Join(missing, ", "))
	}
	warnUnserved(ctx, a, *dest)
	return nil
}

// warnUnserved says on stderr when the running instances do not serve
// dest: what was put back to pending waits for one that does.
func warnUnserved(ctx context.Context, a *admin.Admin, dest string) {
	if dest == "" {
		return
	}
	rec, err := a.Record(ctx)
	if err != nil || len(rec.Live) == 0 || slices.Contains(rec.Served(), dest) {
		return
	}
	fmt.Fprintf(stderr, "receiver: no running instance serves destination %s (they serve %s): its pending deliveries wait until one does\n",
		dest, strings.Join(rec.Served(), ", "))
}

// setSource names where a resolved set comes from, for messages.
func setSource(res admin.Resolution) string {
	if res.Source == admin.FromRecord {
		return "running instances"
	}
	return "environment"
}

func destinationNames(dests []destinationConfig) []string {
	names := make([]string, len(dests))
	for i, d := range dests {
		names[i] = d.Name
	}
	return names
}

func routeNames(dests []route.Destination) []string {
	names := make([]string, len(dests))
	for i, d := range dests {
		names[i] = d.Name
	}
	return names
}

// destinationsCmd prints each destination the running instances serve
// (or, when none runs, that this environment configures), then the others
// found in Postgres: its filter, its URL when this environment configures
// it (redacted), its deliveries and the instances that serve it.
func destinationsCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("destinations", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("destinations: unexpected argument %q", fs.Arg(0))
	}
	dests, err := configuredDestinations()
	if err != nil {
		return err
	}
	a, closeAdmin, err := openAdmin(ctx)
	if err != nil {
		return err
	}
	defer closeAdmin()
	res, err := a.Resolve(ctx, admin.ResolveParams{Env: routes(dests), EnvSet: envNamesDestinations()})
	var mismatch *admin.SetMismatchError
	switch {
	case errors.As(err, &mismatch):
		// A report: show the instances' set, and say this one differs.
		fmt.Fprintln(stderr, "receiver: note:", err)
		res.Destinations, res.Source = mismatch.Record, admin.FromRecord
	case errors.Is(err, admin.ErrMixedSets):
		// Overview adds what the other instances serve, as partial.
		res.Destinations, res.Source = res.Record.Sets()[0][0].Destinations, admin.FromRecord
	case err != nil:
		return err
	case res.Note != "":
		fmt.Fprintln(stderr, "receiver:", res.Note)
	}
	infos, err := a.Overview(ctx, res)
	if err != nil {
		return err
	}
	// URLs are not recorded: this environment's, where it configures the
	// destination as the instances do.
	urls := map[string]string{}
	if res.Source == admin.FromEnvironment || (envNamesDestinations() && mismatch == nil && !res.Record.Mixed()) {
		for _, d := range dests {
			urls[d.Name] = d.Target.String()
		}
	}
	type row struct {
		admin.DestinationInfo
		Types    []string `json:"types,omitempty"`
		Livemode string   `json:"livemode,omitempty"`
		URL      string   `json:"url,omitempty"`
	}
	rows := make([]row, len(infos))
	for i, d := range infos {
		rows[i] = row{DestinationInfo: d}
		if d.State != admin.StateOrphaned {
			rows[i].Types = d.Filter.Types
			if len(rows[i].Types) == 0 {
				rows[i].Types = []string{"*"}
			}
			rows[i].Livemode = string(d.Filter.Livemode)
			rows[i].URL = urls[d.Name]
		}
	}
	if *asJSON {
		return writeJSON(out, rows)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DESTINATION\tSTATE\tTYPES\tLIVEMODE\tURL\tPENDING\tDELIVERED\tDEAD\tOLDEST PENDING")
	for _, r := range rows {
		oldest := "-"
		if r.Pending > 0 {
			oldest = (time.Duration(r.OldestPendingSeconds) * time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", r.Name, r.State, orDash(strings.Join(r.Types, ",")),
			orDash(r.Livemode), orDash(r.URL), r.Pending, r.Delivered, r.Dead, oldest)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if res.Source == admin.FromRecord {
		if res.Record.Mixed() {
			fmt.Fprintf(out, "\nthe running instances serve different destination sets (a configuration change under way?):\n")
			for _, g := range res.Record.Sets() {
				ids := make([]string, len(g))
				for i, in := range g {
					ids[i] = in.Instance
				}
				fmt.Fprintf(out, "  %s: %s\n", strings.Join(g[0].Names(), ","), strings.Join(ids, ", "))
			}
		} else {
			fmt.Fprintf(out, "\nas served by %d running instance(s)\n", len(res.Record.Live))
		}
	}
	return nil
}

// parseArgs parses flags placed before, between or after positional
// arguments ("show EVT_ID --json") and returns the positional ones.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func writeJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
