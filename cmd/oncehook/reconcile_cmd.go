package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/oncehook/oncehook/admin"
	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/internal/redact"
	"github.com/oncehook/oncehook/reconcile"
	"github.com/oncehook/oncehook/store"
)

// reconcileOptions are the flags of reconcile.
type reconcileOptions struct {
	since, types       string
	typesSet           bool // --types was given, even empty
	all, dryRun, force bool
}

func newReconcileCmd() *cobra.Command {
	var o reconcileOptions
	c := &cobra.Command{
		Use:   "reconcile",
		Short: "Store the events Stripe could not deliver, from its Events API",
		Long: `One reconciler run from the command line: list Stripe's Events API and store
every event the ledger lacks, marked source reconcile; the running receivers
deliver them.

Needs DATABASE_URL and STRIPE_API_KEY, and REDIS_URL when the receivers use
Redis. What it stores is routed by the destinations the running instances
recorded.`,
		Example: `  oncehook reconcile --since 24h --dry-run
  oncehook reconcile --since 7d --all --types invoice.paid,invoice.payment_failed`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.typesSet = cmd.Flags().Changed("types")
			return reconcileRun(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := c.Flags()
	f.StringVar(&o.since, "since", "72h", "list events created since: a duration back from now (72h, 7d) or a date")
	f.BoolVar(&o.all, "all", false, "list every event, not only those Stripe failed to deliver")
	f.StringVar(&o.types, "types", "", "comma-separated event types to list (at most 20); replaces RECONCILE_TYPES")
	f.BoolVar(&o.dryRun, "dry-run", false, "only report what is missing")
	f.BoolVar(&o.force, "force", false, "route by this environment's destinations even where the running instances serve others")
	return c
}

// reconcileRun is one reconciler run: it routes what it stores by the
// destinations the running instances recorded (see resolveDestinations).
func reconcileRun(ctx context.Context, o reconcileOptions, out io.Writer) error {
	now := time.Now()
	from, err := parseSince(o.since, now)
	if err != nil {
		return err
	}
	if from.Before(now.Add(-reconcile.MaxLookback)) {
		return fmt.Errorf("--since %s: the Events API keeps 30 days of events", o.since)
	}
	if from.After(now) {
		return fmt.Errorf("--since %s is in the future", o.since)
	}
	e := env{lookup: os.LookupEnv}
	s := e.stripe()
	// --types replaces RECONCILE_TYPES, which is read (and checked) only
	// without it.
	if o.typesSet {
		var errs []error
		s.ReconcileTypes, errs = parseEventTypes(o.types)
		for _, err := range errs {
			e.errs = append(e.errs, fmt.Errorf("--types: %w", err))
		}
	} else {
		s.ReconcileTypes = e.eventTypes()
	}
	redisURL := e.redisURL("REDIS_URL")
	retention := e.duration("RETENTION", 720*time.Hour, 72*time.Hour)
	if err := errors.Join(e.errs...); err != nil {
		return err
	}
	client, err := stripeClient(s)
	if err != nil {
		return err
	}
	if client == nil {
		return errors.New("STRIPE_API_KEY is not set: the reconciler reads Stripe's Events API with it (a restricted key with read access to Events is enough)")
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

	maxAge := reconcileMaxAge(retention)
	if from.Before(now.Add(-maxAge)) {
		return fmt.Errorf("--since %s reaches past what the ledger keeps (RETENTION %s, less 1h): events delivered and pruned since would be delivered again", o.since, retention)
	}
	cfg := reconcile.Config{Lister: client, Pool: pool, All: o.all, Types: s.ReconcileTypes, Lookback: min(s.ReconcileLookback, maxAge), MaxAge: maxAge,
		Slice: reconcile.MaxLookback} // one listing: the command has no run timeout
	if !o.dryRun {
		// Route what it stores as the running instances route webhooks.
		res, err := resolveDestinations(ctx, admin.New(store.New(pool)), dests, o.force)
		if err != nil {
			return err
		}
		table, err := res.Table()
		if err != nil {
			return err
		}
		dc := dedup.Config{Pool: pool, Routes: table, Lease: time.Millisecond}
		if redisURL != "" {
			rdb, err := dedup.NewRedisClient(redisURL, 50*time.Millisecond)
			if err != nil {
				return fmt.Errorf("REDIS_URL: %w", redact.Error(err, redisURL))
			}
			defer rdb.Close()
			dc.Redis = rdb
		}
		dd, err := dedup.New(dc)
		if err != nil {
			return err
		}
		if err := dd.Start(ctx); err != nil {
			return err
		}
		defer func() { _ = dd.Stop(context.WithoutCancel(ctx)) }() // flushes what the run stored
		cfg.Store = dd
	}
	r, err := reconcile.New(cfg)
	if err != nil {
		return err
	}
	mode := "missing events are stored and delivered by the running receivers"
	if o.dryRun {
		mode = "dry run: nothing is stored"
	}
	fmt.Fprintf(out, "reconcile: listing %s created since %s (%s)\n", listingWhat(o.all, s.ReconcileTypes), from.UTC().Format(time.RFC3339), mode)
	sum, err := r.RunOnce(ctx, reconcile.Run{Since: from, DryRun: o.dryRun, Progress: func(p reconcile.Progress) {
		fmt.Fprintf(out, "  pages %d, events seen %d, missing %d, stored %d\n", p.Pages, p.Seen, p.Missing, p.Stored)
	}})
	if err != nil {
		return fmt.Errorf("reconcile: %w (pages %d, seen %d, missing %d, stored %d)", err, sum.Pages, sum.Seen, sum.Missing, sum.Stored)
	}
	if o.dryRun {
		fmt.Fprintf(out, "done: %s seen, %d missing from the ledger (dry run: none stored)\n", count(sum.Seen, "event", ""), sum.Missing)
		return nil
	}
	checkpoint := "checkpoint at " + sum.Through.UTC().Format(time.RFC3339)
	if !sum.Checkpointed {
		checkpoint = "checkpoint unchanged: --since is after it, so the events between were not listed"
	}
	fmt.Fprintf(out, "done: %s seen, %d missing, %d stored (the others arrived meanwhile); %s\n",
		count(sum.Seen, "event", ""), sum.Missing, sum.Stored, checkpoint)
	if sum.Rejected > 0 {
		fmt.Fprintf(out, "%s could not be stored (a webhook with such a body would get 400): skipped; the log names them\n", count(sum.Rejected, "listed event", ""))
	}
	return nil
}

func listingWhat(all bool, types []string) string {
	what := "the events Stripe failed to deliver"
	if all {
		what = "every event"
	}
	if len(types) > 0 {
		what += " of types " + strings.Join(types, ",")
	}
	return what
}
