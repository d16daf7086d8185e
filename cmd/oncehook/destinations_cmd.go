package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/oncehook/oncehook/admin"
)

func newDestinationsCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "destinations",
		Short: "Each destination's filter, URL and delivery counts",
		Long: `Each destination the running instances serve (or, when none runs, that this
environment configures), then the others found in Postgres: its filter, its
URL when this environment configures it (redacted), its deliveries and the
instances that serve it.

Needs DATABASE_URL.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return destinations(cmd.Context(), asJSON, cmd.OutOrStdout())
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// destinations prints each destination the running instances serve
// (or, when none runs, that this environment configures), then the others
// found in Postgres: its filter, its URL when this environment configures
// it (redacted), its deliveries and the instances that serve it.
func destinations(ctx context.Context, asJSON bool, out io.Writer) error {
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
		fmt.Fprintln(stderr, "oncehook: note:", term(err.Error()))
		res.Destinations, res.Source = mismatch.Record, admin.FromRecord
	case errors.Is(err, admin.ErrMixedSets):
		// Overview adds what the other instances serve, as partial.
		res.Destinations, res.Source = res.Record.Sets()[0][0].Destinations, admin.FromRecord
	case err != nil:
		return err
	case res.Note != "":
		fmt.Fprintln(stderr, "oncehook:", term(res.Note))
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
	if asJSON {
		return writeJSON(out, rows)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DESTINATION\tSTATE\tTYPES\tLIVEMODE\tURL\tPENDING\tDELIVERED\tDEAD\tOLDEST PENDING")
	for _, r := range rows {
		oldest := "-"
		if r.Pending > 0 {
			oldest = (time.Duration(r.OldestPendingSeconds) * time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", term(r.Name), r.State, term(orDash(strings.Join(r.Types, ","))),
			term(orDash(r.Livemode)), term(orDash(r.URL)), r.Pending, r.Delivered, r.Dead, oldest)
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
				fmt.Fprintf(out, "  %s: %s\n", term(strings.Join(g[0].Names(), ",")), term(strings.Join(ids, ", ")))
			}
		} else {
			fmt.Fprintf(out, "\nas served by %s\n", count(len(res.Record.Live), "running instance", ""))
		}
	}
	return nil
}
