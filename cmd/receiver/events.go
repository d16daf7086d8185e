package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/oncehook/oncehook/internal/redact"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/delivery"
)

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

func checkStatus(s string) error {
	switch s {
	case "", delivery.StatusPending, delivery.StatusDelivered, delivery.StatusDead, delivery.StatusUnrouted:
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
	pool, err := adminPool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	rows, err := delivery.ListEvents(ctx, pool, delivery.ListFilter{Status: *status, Destination: *dest, Type: *typ, Since: from, Limit: *limit})
	if err != nil {
		return err
	}
	if *asJSON {
		if rows == nil {
			rows = []delivery.EventRow{}
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
	pool, err := adminPool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	ev, err := delivery.ShowEvent(ctx, pool, pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		if ev.History == nil {
			ev.History = []delivery.Attempt{}
		}
		return writeJSON(out, struct {
			delivery.Event
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
	ids, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	usage := errors.New("usage: receiver replay EVT_ID... [--destination NAME] | receiver replay --status dead [--destination NAME] [--since D] | receiver replay --destination NAME --since D")
	backfill := len(ids) == 0 && *status == "" && *dest != ""
	switch {
	case len(ids) > 0 && *status != "":
		return usage
	case len(ids) == 0 && *status == "" && !backfill:
		return usage
	case backfill && *since == "":
		return errors.New("--destination without --status backfills the destination: give --since too")
	case *status != "" && *status != delivery.StatusDead && *status != delivery.StatusDelivered:
		return fmt.Errorf("--status %q: want dead or delivered (pending deliveries are made anyway)", *status)
	case *status == delivery.StatusDelivered && *since == "":
		return errors.New("--status delivered sends every stored delivered event again: give --since too")
	}
	from, err := parseSince(*since, time.Now())
	if err != nil {
		return err
	}
	var target *destinationConfig
	if *dest != "" {
		dests, err := configuredDestinations()
		if err != nil {
			return err
		}
		i := slices.IndexFunc(dests, func(d destinationConfig) bool { return d.Name == *dest })
		if i < 0 {
			return fmt.Errorf("--destination %q is not configured here (destinations: %s); run the command with the receiver's DESTINATIONS settings",
				*dest, strings.Join(destinationNames(dests), ", "))
		}
		target = &dests[i]
	}
	pool, err := adminPool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	switch {
	case backfill:
		n, err := delivery.Backfill(ctx, pool, target.Name, target.Filter, from)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%d events received since %s given to destination %s\n", n, from.UTC().Format(time.RFC3339), target.Name)
		return nil
	case *status != "":
		n, err := delivery.ReplayStatus(ctx, pool, *status, from, *dest)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%d %s deliveries put back to pending\n", n, *status)
		return nil
	}
	found, err := delivery.Replay(ctx, pool, ids, *dest)
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(found))
	for _, id := range found {
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
	return nil
}

func destinationNames(dests []destinationConfig) []string {
	names := make([]string, len(dests))
	for i, d := range dests {
		names[i] = d.Name
	}
	return names
}

// destinationsCmd prints each destination, configured here or found in
// Postgres: its filter, its URL (redacted) and its deliveries.
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
	pool, err := adminPool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	stats, err := delivery.Stats(ctx, pool)
	if err != nil {
		return err
	}
	type row struct {
		delivery.DestinationStats
		State    string   `json:"state"` // configured or orphaned
		Types    []string `json:"types,omitempty"`
		Livemode string   `json:"livemode,omitempty"`
		URL      string   `json:"url,omitempty"`
	}
	var rows []row
	byName := map[string]int{}
	for _, d := range dests {
		types := d.Filter.Types
		if len(types) == 0 {
			types = []string{"*"}
		}
		byName[d.Name] = len(rows)
		rows = append(rows, row{DestinationStats: delivery.DestinationStats{Name: d.Name}, State: "configured",
			Types: types, Livemode: string(d.Filter.Livemode), URL: d.Target.String()})
	}
	for _, s := range stats {
		if i, ok := byName[s.Name]; ok {
			rows[i].DestinationStats = s
			continue
		}
		rows = append(rows, row{DestinationStats: s, State: "orphaned"})
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
	return tw.Flush()
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
