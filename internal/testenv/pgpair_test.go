package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/internal/eventually"
)

// TestPostgresPair checks what the failover tests rely on: the standby
// replicates, HoldReplication keeps commits from it (an asynchronous
// primary commits on, a synchronous one makes the commit wait), and after
// CrashPrimary and Promote the multi-host URL writes to the promoted
// standby, which has what was replicated and not what was held.
func TestPostgresPair(t *testing.T) {
	for _, mode := range []Replication{Async, Sync} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			p := StartPostgresPair(t, mode)
			ctx := t.Context()
			pool, err := pgxpool.New(ctx, p.MultiHostURL())
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			exec := func(timeout time.Duration, sql string, args ...any) error {
				ctx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				_, err := pool.Exec(ctx, sql, args...)
				return err
			}
			if err := exec(5*time.Second, `CREATE TABLE rows (n int PRIMARY KEY)`); err != nil {
				t.Fatal(err)
			}
			if err := exec(5*time.Second, `INSERT INTO rows VALUES (1)`); err != nil {
				t.Fatal(err)
			}
			standby, err := pgx.Connect(ctx, p.StandbyURL())
			if err != nil {
				t.Fatal(err)
			}
			count := func() int {
				var n int
				if err := standby.QueryRow(ctx, `SELECT count(*) FROM rows`).Scan(&n); err != nil {
					return -1
				}
				return n
			}
			eventually.Require(t, 10*time.Second, "row 1 on the standby", func() bool { return count() == 1 })

			p.HoldReplication()
			err = exec(time.Second, `INSERT INTO rows VALUES (2)`)
			switch {
			case mode == Async && err != nil:
				t.Fatalf("an asynchronous primary's commit failed while replication was held: %v", err)
			case mode == Sync && err == nil:
				t.Fatal("a synchronous primary's commit returned while replication was held")
			}
			time.Sleep(300 * time.Millisecond) // the fault window: row 2 must not reach the standby
			if n := count(); n != 1 {
				t.Fatalf("the standby has %d rows while replication is held, want 1", n)
			}
			_ = standby.Close(ctx)

			p.CrashPrimary(t)
			if err := exec(2*time.Second, `INSERT INTO rows VALUES (3)`); err == nil {
				t.Fatal("a write succeeded with the primary crashed and the standby not promoted")
			}
			p.Promote(t)
			eventually.RequireNoError(t, 10*time.Second, "a write through the multi-host URL", func() error {
				return exec(2*time.Second, `INSERT INTO rows VALUES (4)`)
			})
			var got []int32
			rows, err := pool.Query(ctx, `SELECT n FROM rows ORDER BY n`)
			if err != nil {
				t.Fatal(err)
			}
			got, err = pgx.CollectRows(rows, pgx.RowTo[int32])
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0] != 1 || got[1] != 4 {
				t.Fatalf("the promoted standby has rows %v, want [1 4]: the replicated row, not the held one", got)
			}
		})
	}
}
