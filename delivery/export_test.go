package delivery

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PageQueries exposes the paging statements for f and their arguments,
// for the query plan tests.
func PageQueries(ctx context.Context, pool *pgxpool.Pool, f PageFilter) (page, edge string, args pgx.NamedArgs, err error) {
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		q, err := pageQueries(ctx, tx, f)
		page, edge, args = q.page, q.edge, q.args
		return err
	})
	return page, edge, args, err
}
