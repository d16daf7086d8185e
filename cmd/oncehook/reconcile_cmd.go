package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/oncehook/oncehook/admin"
	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/internal/redact"
	"github.com/oncehook/oncehook/reconcile"
	"github.com/oncehook/oncehook/store"
)

// reconcileCmd is `receiver reconcile --since 72h [--all] [--types T]
// [--dry-run]`: one reconciler run from the command line. It needs
// DATABASE_URL and STRIPE_API_KEY, and REDIS_URL when the receivers use
// Redis; it routes what it stores by the destinations the running
// instances recorded (see resolveDestinations).
func reconcileCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("reconcile", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	since := fs.String("since", "72h", "list events created since: a duration back from now (72h) or a date")
	all := fs.Bool("all", false, "list every event, not only those Stripe failed to deliver")
	types := fs.String("types", "", "comma-separated event types to list (at most 20)")
	dryRun := fs.Bool("dry-run", false, "only report what is missing")
	force := fs.Bool("force", false, "route by this environment's destinations even where the running instances serve others")
	if rest, err := parseArgs(fs, args); err != nil || len(rest) > 0 {
		if err == nil {
			err = fmt.Errorf("unexpected argument %q", rest[0])
		}
		return fmt.Errorf("reconcile: %v\nusage: receiver reconcile [--since 72h] [--all] [--types T,...] [--dry-run] [--force]", err)
	}
	typesSet := false
	fs.Visit(func(f *flag.Flag) { typesSet = typesSet || f.Name == "types" })
	now := time.Now()
	from, err := parseSince(*since, now)
	if err != nil {
		return err
	}
	if from.Before(now.Add(-reconcile.MaxLookback)) {
		return fmt.Errorf("--since %s: the Events API keeps 30 days of events", *since)
	}
	if from.After(now) {
		return fmt.Errorf("--since %s is in the future", *since)
	}
	e := env{lookup: os.LookupEnv}
	s := e.stripe()
	// --types replaces RECONCILE_TYPES, which is read (and checked) only
	// without it.
	if typesSet {
		var errs []error
		s.ReconcileTypes, errs = parseEventTypes(*types)
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
		return fmt.Errorf("--since %s reaches past what the ledger keeps (RETENTION %s, less 1h): events delivered and pruned since would be delivered again", *since, retention)
	}
	cfg := reconcile.Config{Lister: client, Pool: pool, All: *all, Types: s.ReconcileTypes, Lookback: min(s.ReconcileLookback, maxAge), MaxAge: maxAge,
		Slice: reconcile.MaxLookback} // one listing: the command has no run timeout
	if !*dryRun {
		// Route what it stores as the running instances route webhooks.
		res, err := resolveDestinations(ctx, admin.New(store.New(pool)), dests, *force)
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
	if *dryRun {
		mode = "dry run: nothing is stored"
	}
	fmt.Fprintf(out, "reconcile: listing %s created since %s (%s)\n", listingWhat(*all, s.ReconcileTypes), from.UTC().Format(time.RFC3339), mode)
	sum, err := r.RunOnce(ctx, reconcile.Run{Since: from, DryRun: *dryRun, Progress: func(p reconcile.Progress) {
		fmt.Fprintf(out, "  pages %d, events seen %d, missing %d, stored %d\n", p.Pages, p.Seen, p.Missing, p.Stored)
	}})
	if err != nil {
		return fmt.Errorf("reconcile: %w (pages %d, seen %d, missing %d, stored %d)", err, sum.Pages, sum.Seen, sum.Missing, sum.Stored)
	}
	if *dryRun {
		fmt.Fprintf(out, "done: %d events seen, %d missing from the ledger (dry run: none stored)\n", sum.Seen, sum.Missing)
		return nil
	}
	checkpoint := "checkpoint at " + sum.Through.UTC().Format(time.RFC3339)
	if !sum.Checkpointed {
		checkpoint = "checkpoint unchanged: --since is after it, so the events between were not listed"
	}
	fmt.Fprintf(out, "done: %d events seen, %d missing, %d stored (the others arrived meanwhile); %s\n",
		sum.Seen, sum.Missing, sum.Stored, checkpoint)
	if sum.Rejected > 0 {
		fmt.Fprintf(out, "%d listed events could not be stored (a webhook with such a body would get 400) and were skipped; the log names them\n", sum.Rejected)
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
