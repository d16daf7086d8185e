package store

import (
	"errors"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound is returned for an event id with no row.
var ErrNotFound = errors.New("no such event")

// Store runs oncehook's statements on a Postgres pool.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a Store on pool. The pool's database must be migrated
// (migrations.Up).
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Pool is the pool the Store runs on, for callers that check its health
// or close it; never for SQL of their own.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }
