package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/oncehook/oncehook/internal/metrics"
)

func TestSQLState(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("inserting 3 events: %w", &pgconn.PgError{Code: "53100", Message: "could not extend file"}), metrics.DiskFull},
		{errors.Join(errors.New("unavailable"), &pgconn.PgError{Code: "57P03"}), "57P03"},
		{context.DeadlineExceeded, metrics.NoSQLState},
		{nil, metrics.NoSQLState},
		{&pgconn.PgError{Code: "\x1b]0;x\a"}, metrics.BadCode}, // a hostile server's code
		{&pgconn.PgError{Code: "5310"}, metrics.BadCode},
		{&pgconn.PgError{Code: "53l00"}, metrics.BadCode},
	} {
		if got := metrics.SQLState(c.err); got != c.want {
			t.Errorf("SQLState(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

// TestPostgresErrorsCountBySQLState: each write shows at 0 for a full
// disk before it fails, so that the alert's increase sees the first one.
func TestPostgresErrorsCountBySQLState(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	if got := postgresErrors(t, m)["insert/53100"]; got != 0 {
		t.Fatalf("insert/53100 = %v before any error, want 0 and present", got)
	}
	m.PostgresError("insert", &pgconn.PgError{Code: "53100"})
	m.PostgresError("insert", errors.New("unexpected EOF"))
	got := postgresErrors(t, m)
	if got["insert/53100"] != 1 || got["insert/none"] != 1 {
		t.Fatalf("after a disk full and a lost connection: %v", got)
	}
	var nilMetrics *metrics.Metrics
	nilMetrics.PostgresError("insert", nil) // records nothing, does not panic
}

// postgresErrors reads oncehook_postgres_errors_total as op/sqlstate ->
// count; a series not exported is -1.
func postgresErrors(t *testing.T, m *metrics.Metrics) map[string]float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{"insert/53100": -1}
	for _, f := range fams {
		if f.GetName() != "oncehook_postgres_errors_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			var op, code string
			for _, l := range s.GetLabel() {
				switch l.GetName() {
				case "op":
					op = l.GetValue()
				case "sqlstate":
					code = l.GetValue()
				}
			}
			out[op+"/"+code] = s.GetCounter().GetValue()
		}
	}
	return out
}
