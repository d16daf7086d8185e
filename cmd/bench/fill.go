package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/oncehook/oncehook/bench"
)

// fillCmd adds delivered events to a receiver's ledger with SQL.
func fillCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench fill", flag.ContinueOnError)
	var (
		db         = fs.String("db", "", "the receiver's database URL, migrated (default $DATABASE_URL)")
		events     = fs.Int64("events", 0, "events to add")
		span       = fs.Duration("span", 720*time.Hour, "spread the events evenly over this long before now")
		dests      = fs.String("destinations", "default", "comma-separated destinations, each with a delivered delivery of every event")
		noAttempts = fs.Bool("no-attempts", false, "leave the delivery history empty (default: one successful attempt per delivery)")
		conns      = fs.Int("c", 2, "connections filling in parallel")
		chunk      = fs.Int("chunk", 20000, "events per transaction")
		jsonPath   = fs.String("json", "", "write what the fill did (events, seconds, bytes) as JSON here")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("fill: unexpected argument %q", fs.Arg(0))
	}
	if *db == "" {
		*db = os.Getenv("DATABASE_URL")
	}
	if *db == "" {
		return errors.New("fill: no database: set -db or DATABASE_URL")
	}
	st, err := bench.Fill(ctx, bench.FillConfig{
		DatabaseURL: *db, Events: *events, Span: *span, Destinations: splitList(*dests),
		NoAttempts: *noAttempts, Connections: *conns, Chunk: *chunk, Progress: os.Stderr,
	})
	if err != nil {
		return err
	}
	if *jsonPath != "" {
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(*jsonPath, append(b, '\n'), 0o644)
	}
	return nil
}
