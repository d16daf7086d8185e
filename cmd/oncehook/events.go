package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

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
		fmt.Fprintln(stderr, "oncehook:", term(res.Note))
	}
	return res, nil
}

// statuses complete --status.
var statuses = cobra.FixedCompletions([]string{"pending", "delivered", "dead", "unrouted"}, cobra.ShellCompDirectiveNoFileComp)

func newEventsCmd() *cobra.Command {
	c := groupCmd(&cobra.Command{
		Use:   "events",
		Short: "List stored events, or show one with its deliveries and history",
		Long: `List stored events, or show one with its deliveries and history.

Needs DATABASE_URL only; the receiver need not be running.`,
	})
	c.AddCommand(newEventsListCmd(), newEventsShowCmd())
	return c
}

// listOptions are the flags of events list.
type listOptions struct {
	status, destination, typ, since string
	limit                           int
	json                            bool
}

func newEventsListCmd() *cobra.Command {
	var o listOptions
	c := &cobra.Command{
		Use:   "list",
		Short: "List deliveries, newest first: one row per event and destination",
		Example: `  oncehook events list --status dead --destination billing --since 24h
  oncehook events list --status unrouted --since 7d --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return eventsList(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := c.Flags()
	f.StringVar(&o.status, "status", "", "pending, delivered, dead or unrouted (matched no destination)")
	f.StringVar(&o.destination, "destination", "", "only this destination's deliveries")
	f.StringVar(&o.typ, "type", "", "event type, such as invoice.paid, or a pattern such as invoice.*")
	f.StringVar(&o.since, "since", "", "received within this duration (24h, 7d) or since this date (2026-01-02)")
	f.IntVar(&o.limit, "limit", 100, "at most this many rows, newest first")
	f.BoolVar(&o.json, "json", false, "print JSON")
	_ = c.RegisterFlagCompletionFunc("status", statuses)
	return c
}

func eventsList(ctx context.Context, o listOptions, out io.Writer) error {
	if err := checkStatus(o.status); err != nil {
		return err
	}
	from, err := parseSince(o.since, time.Now())
	if err != nil {
		return err
	}
	if o.limit <= 0 {
		return fmt.Errorf("--limit %d: want a positive number", o.limit)
	}
	p := admin.ListParams{Status: store.Status(o.status), Destination: o.destination, Since: from}
	if o.typ != "" {
		p.Types = []string{o.typ}
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("events list: %w", err)
	}
	a, closeAdmin, err := openAdmin(ctx)
	if err != nil {
		return err
	}
	defer closeAdmin()
	rows, err := a.ListDeliveries(ctx, p, o.limit)
	if err != nil {
		return err
	}
	if o.json {
		if rows == nil {
			rows = []admin.EventRow{}
		}
		return writeJSON(out, rows)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EVENT ID\tTYPE\tDESTINATION\tSTATUS\tATTEMPTS\tRECEIVED\tSOURCE\tLAST ERROR")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", term(r.ID), term(r.Type), term(orDash(r.Destination)), r.Status, r.Attempts,
			r.ReceivedAt.UTC().Format(time.RFC3339), term(sourceName(r.Source)), term(shorten(r.LastError, 60)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, count(len(rows), "row", ""))
	return nil
}

func newEventsShowCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "show EVT_ID",
		Short: "Show one event: its deliveries, every attempt, and the payload",
		Args:  exactArgs(1, "EVT_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return eventsShow(cmd.Context(), args[0], asJSON, cmd.OutOrStdout())
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func eventsShow(ctx context.Context, id string, asJSON bool, out io.Writer) error {
	a, closeAdmin, err := openAdmin(ctx)
	if err != nil {
		return err
	}
	defer closeAdmin()
	ev, err := a.Show(ctx, id)
	if err != nil {
		return err
	}
	if asJSON {
		if ev.History == nil {
			ev.History = []admin.Attempt{}
		}
		return writeJSON(out, struct {
			admin.Event
			Payload json.RawMessage `json:"payload"`
		}{ev, ev.Payload})
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id\t%s\ntype\t%s\nlivemode\t%v\nreceived\t%s\nsource\t%s\n", term(ev.ID), term(ev.Type), ev.Livemode,
		ev.ReceivedAt.UTC().Format(time.RFC3339), term(sourceName(ev.Source)))
	_ = tw.Flush()
	fmt.Fprintf(out, "\ndeliveries (%d):\n", len(ev.Deliveries))
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  DESTINATION\tSTATUS\tATTEMPTS\tNEXT ATTEMPT\tDELIVERED\tLAST ERROR")
	for _, d := range ev.Deliveries {
		// Only a pending delivery has a next attempt; a delivered or dead
		// one keeps the time it would have had.
		next := "-"
		if d.Status == store.StatusPending {
			next = timeOrDash(d.NextAttemptAt)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\t%s\n", term(orDash(d.Destination)), d.Status, d.Attempts,
			next, timeOrDash(d.DeliveredAt), term(d.LastError))
	}
	_ = tw.Flush()
	for _, d := range ev.Deliveries {
		if note := d.KeySkipNote(); note != "" {
			fmt.Fprintf(out, "  %s: %s\n", term(d.Destination), term(note))
		}
	}
	fmt.Fprintf(out, "\nhistory (%s):\n", count(len(ev.History), "attempt", ""))
	for _, a := range ev.History {
		result := "ok"
		if !a.OK {
			result = "failed: " + a.Error
		}
		fmt.Fprintf(out, "  %s  %s  %s  %s\n", a.At.UTC().Format(time.RFC3339Nano), term(a.Destination), term(a.Instance), term(result))
	}
	fmt.Fprintf(out, "\npayload:\n%s\n", termLines(string(ev.Payload)))
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

// writeJSON writes v as indented JSON, with what a terminal may act on
// escaped (jsonForTerm).
func writeJSON(out io.Writer, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := out.Write(jsonForTerm(b.Bytes()))
	return err
}

// shorten cuts s to n bytes at most, on a character boundary, ending in
// "..." when cut.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
