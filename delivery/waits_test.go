package delivery_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
)

// sweepWatch counts the sweepers' completed claims per destination on a
// pool, so that a test checking that nothing more happens can wait for the
// dispatcher to have had its chances (a number of sweeps) instead of
// sleeping for a guessed time.
type sweepWatch struct {
	mu     sync.Mutex
	sweeps map[string]int
}

type claimKey struct{}

// watchSweeps returns a pool on the same database as pool whose sweeper
// claims are counted by the returned watch. Give it to the dispatcher or
// instance under test.
func watchSweeps(t *testing.T, pool *pgxpool.Pool) (*pgxpool.Pool, *sweepWatch) {
	t.Helper()
	w := &sweepWatch{sweeps: map[string]int{}}
	cfg := pool.Config().Copy()
	cfg.ConnConfig.Tracer = w
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, w
}

// TraceQueryStart marks the sweeper's claim, whose fourth argument is its
// destination.
func (w *sweepWatch) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if isClaim(data.SQL) && len(data.Args) == 4 {
		if dest, ok := data.Args[3].(string); ok {
			return context.WithValue(ctx, claimKey{}, dest)
		}
	}
	return ctx
}

// TraceQueryEnd counts a claim that completed without error.
func (w *sweepWatch) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	if dest, ok := ctx.Value(claimKey{}).(string); ok && data.Err == nil {
		w.mu.Lock()
		w.sweeps[dest]++
		w.mu.Unlock()
	}
}

// isClaim recognises the sweeper's claim by its text: the only statement
// locking FOR UPDATE SKIP LOCKED into a "claimed" CTE.
func isClaim(sql string) bool {
	return strings.Contains(sql, "FOR UPDATE SKIP LOCKED") && strings.Contains(sql, "claimed AS")
}

func (w *sweepWatch) count(dest string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sweeps[dest]
}

// waitSweeps waits until dest's sweeper has completed n more claims.
func (w *sweepWatch) waitSweeps(t *testing.T, dest string, n int) {
	t.Helper()
	from := w.count(dest)
	eventually.Require(t, 10*time.Second, "the "+dest+" sweeper to sweep again", func() bool { return w.count(dest) >= from+n })
}

// settle gives each of dests' sweepers a few more sweeps, their chances to
// claim and deliver anything again, and then stops the instances: Stop ends
// with the deliveries under way, so that after settle nothing more can
// reach a sink and a count of deliveries is final.
func (w *sweepWatch) settle(t *testing.T, dests []string, ins ...*harness.Instance) {
	t.Helper()
	for _, d := range dests {
		w.waitSweeps(t, d, 3)
	}
	for _, in := range ins {
		in.Stop()
	}
}
