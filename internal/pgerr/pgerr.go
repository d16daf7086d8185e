// Package pgerr sorts Postgres errors by what the caller should do with
// them: a batch writer (retry, split the batch) and the start (wait for
// Postgres, or give up at once).
package pgerr

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// IsRetryable reports a deadlock or serialization failure, which a retry of
// the same statement resolves.
func IsRetryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// IsRowError reports an error caused by a row's data (SQLSTATE class 22,
// or 23 other than a unique violation): no retry of the same rows cures it,
// and writing them apart isolates the bad one.
func IsRowError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return strings.HasPrefix(pgErr.Code, "22") || (strings.HasPrefix(pgErr.Code, "23") && pgErr.Code != "23505")
}
