package delivery

import "github.com/jackc/pgx/v5"

// PageQueries exposes the paging statements and their arguments, for the
// query plan tests.
func PageQueries(f PageFilter) (page, edge string, args pgx.NamedArgs) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	page, edge = pageQueries(f.Status)
	return page, edge, pageArgs(f)
}
