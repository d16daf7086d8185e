package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/oncehook/oncehook/admin"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/store"
)

// replayOptions are the flags of replay.
type replayOptions struct {
	status, since, dest string
	force               bool
}

func newReplayCmd() *cobra.Command {
	var o replayOptions
	c := &cobra.Command{
		Use:   "replay [EVT_ID...]",
		Short: "Put deliveries back to pending, or backfill a destination",
		Long: `Put deliveries back to pending, so that the running receivers deliver them
again, or give a destination the stored events it matches and never had.

Needs DATABASE_URL; with --destination, the destinations of this environment
(DESTINATIONS or SINK_URL) when no receiver runs.`,
		Example: `  oncehook replay evt_1 evt_2 [--destination NAME [--force]]
  oncehook replay --status dead [--destination NAME] [--since 24h]
  oncehook replay --status delivered --since 2h [--destination NAME]
  oncehook replay --destination NAME --since 7d [--force]    backfill a destination added later`,
		RunE: func(cmd *cobra.Command, ids []string) error {
			return replay(cmd.Context(), ids, o, cmd.OutOrStdout())
		},
	}
	f := c.Flags()
	f.StringVar(&o.status, "status", "", "replay every delivery of this status: dead, or delivered (to send them all again)")
	f.StringVar(&o.since, "since", "", "received within this duration (24h, 7d) or since this date (2026-01-02)")
	f.StringVar(&o.dest, "destination", "", "only this destination; alone with --since, backfill it with the events it never had")
	f.BoolVar(&o.force, "force", false, "route by this environment's destinations even where the running instances serve others")
	_ = c.RegisterFlagCompletionFunc("status", cobra.FixedCompletions([]string{"dead", "delivered"}, cobra.ShellCompDirectiveNoFileComp))
	return c
}

func replay(ctx context.Context, ids []string, o replayOptions, out io.Writer) error {
	usage := errors.New("usage: oncehook replay EVT_ID... [--destination NAME [--force]] | oncehook replay --status dead [--destination NAME] [--since D] | oncehook replay --destination NAME --since D [--force]")
	backfill := len(ids) == 0 && o.status == "" && o.dest != ""
	switch {
	case len(ids) > 0 && o.status != "":
		return usage
	case len(ids) == 0 && o.status == "" && !backfill:
		return usage
	case backfill && o.since == "":
		return errors.New("--destination without --status backfills the destination: give --since too")
	case o.status != "" && o.status != string(store.StatusDead) && o.status != string(store.StatusDelivered):
		return fmt.Errorf("--status %q: want dead or delivered (pending deliveries are made anyway)", o.status)
	case o.status == string(store.StatusDelivered) && o.since == "":
		return errors.New("--status delivered sends every stored delivered event again: give --since too")
	}
	from, err := parseSince(o.since, time.Now())
	if err != nil {
		return err
	}
	var env []destinationConfig
	if backfill || o.dest != "" && len(ids) > 0 {
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
		res, err := resolveDestinations(ctx, a, env, o.force)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(res.Destinations, func(d route.Destination) bool { return d.Name == o.dest })
		if i < 0 {
			return fmt.Errorf("--destination %q is not configured (destinations of the %s: %s)", o.dest, setSource(res),
				strings.Join(routeNames(res.Destinations), ", "))
		}
		target := res.Destinations[i]
		r, err := a.Replay(ctx, admin.ReplayParams{Backfill: &target.Filter, Destination: target.Name, Since: from})
		if err != nil {
			return fmt.Errorf("%w (%s given to %s before the error)", err, count(r.Replayed, "event", ""), target.Name)
		}
		fmt.Fprintf(out, "%s received since %s given to destination %s\n", count(r.Replayed, "event", ""), from.UTC().Format(time.RFC3339), term(target.Name))
		return nil
	case o.status != "":
		r, err := a.Replay(ctx, admin.ReplayParams{Status: store.Status(o.status), Destination: o.dest, Since: from})
		if err != nil {
			return fmt.Errorf("%w (%s put back to pending before the error)", err, count(r.Replayed, "delivery", "deliveries"))
		}
		fmt.Fprintf(out, "%s put back to pending\n", count(r.Replayed, o.status+" delivery", o.status+" deliveries"))
		warnUnserved(ctx, a, o.dest)
		return nil
	}
	if o.dest != "" {
		// A delivery is created where the event has none: only to a
		// destination that is served, or it would wait for good.
		res, err := resolveDestinations(ctx, a, env, o.force)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(res.Destinations, func(d route.Destination) bool { return d.Name == o.dest }) {
			return fmt.Errorf("--destination %q is not configured (destinations of the %s: %s)", o.dest, setSource(res),
				strings.Join(routeNames(res.Destinations), ", "))
		}
	}
	r, err := a.Replay(ctx, admin.ReplayParams{IDs: ids, Destination: o.dest, Create: o.dest != ""})
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(r.IDs))
	for _, id := range r.IDs {
		seen[id] = true
		fmt.Fprintf(out, "%s put back to pending\n", term(id))
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
	warnUnserved(ctx, a, o.dest)
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
	fmt.Fprintf(stderr, "oncehook: no running instance serves destination %s (they serve %s): its pending deliveries wait until one does\n",
		term(dest), term(strings.Join(rec.Served(), ", ")))
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
