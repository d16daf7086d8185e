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
	case "", delivery.StatusPending, delivery.StatusDelivered, delivery.StatusDead:
		return nil
	}
	return fmt.Errorf("--status %q: want pending, delivered or dead", s)
}

func eventsCmd(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: receiver events list [--status S] [--type T] [--since D] [--limit N] [--json] | events show EVT_ID [--json]")
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
	status := fs.String("status", "", "pending, delivered or dead")
	typ := fs.String("type", "", "event type, such as invoice.paid")
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
	rows, err := delivery.ListEvents(ctx, pool, delivery.ListFilter{Status: *status, Type: *typ, Since: from, Limit: *limit})
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
	fmt.Fprintln(tw, "EVENT ID\tTYPE\tSTATUS\tATTEMPTS\tRECEIVED\tLAST ERROR")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", r.ID, r.Type, r.Status, r.Attempts,
			r.ReceivedAt.UTC().Format(time.RFC3339), shorten(r.LastError, 60))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "%d events\n", len(rows))
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
	r, payload, history, err := delivery.ShowEvent(ctx, pool, pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		if history == nil {
			history = []delivery.Attempt{}
		}
		return writeJSON(out, struct {
			delivery.EventRow
			Payload json.RawMessage    `json:"payload"`
			History []delivery.Attempt `json:"history"`
		}{r, payload, history})
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id\t%s\ntype\t%s\nstatus\t%s\nattempts\t%d\nreceived\t%s\nnext attempt\t%s\n",
		r.ID, r.Type, r.Status, r.Attempts, r.ReceivedAt.UTC().Format(time.RFC3339), r.NextAttemptAt.UTC().Format(time.RFC3339))
	if r.DeliveredAt != nil {
		fmt.Fprintf(tw, "delivered\t%s\n", r.DeliveredAt.UTC().Format(time.RFC3339))
	}
	if r.LastError != "" {
		fmt.Fprintf(tw, "last error\t%s\n", r.LastError)
	}
	_ = tw.Flush()
	fmt.Fprintf(out, "\nhistory (%d attempts):\n", len(history))
	for _, a := range history {
		result := "ok"
		if !a.OK {
			result = "failed: " + a.Error
		}
		fmt.Fprintf(out, "  %s  %s  %s\n", a.At.UTC().Format(time.RFC3339Nano), a.Instance, result)
	}
	fmt.Fprintf(out, "\npayload:\n%s\n", payload)
	return nil
}

func replayCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	status := fs.String("status", "", "replay every event of this status: dead, or delivered (to send them all again)")
	since := fs.String("since", "", "with --status: received within this duration (24h) or since this date")
	ids, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if (len(ids) == 0) == (*status == "") {
		return errors.New("usage: receiver replay EVT_ID... | receiver replay --status dead [--since D]")
	}
	if *status != "" && *status != delivery.StatusDead && *status != delivery.StatusDelivered {
		return fmt.Errorf("--status %q: want dead or delivered (pending events are delivered anyway)", *status)
	}
	if *status == delivery.StatusDelivered && *since == "" {
		return errors.New("--status delivered sends every stored delivered event again: give --since too")
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
	if *status != "" {
		n, err := delivery.ReplayStatus(ctx, pool, *status, from)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%d %s events put back to pending\n", n, *status)
		return nil
	}
	found, err := delivery.Replay(ctx, pool, ids)
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
		return fmt.Errorf("unknown event ids: %s", strings.Join(missing, ", "))
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
