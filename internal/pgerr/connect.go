package pgerr

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// permanentConnect are the SQLSTATEs with which Postgres refuses a
// connection that asking again will not change: only the operator can
// (the same codes on which pgx stops trying a DATABASE_URL's other hosts).
var permanentConnect = map[string]string{
	"3D000": "the database does not exist",
	"28P01": "password authentication failed",
	"28000": "the role does not exist, or pg_hba.conf refuses it",
	"42501": "the role may not connect to the database",
}

// IsPermanentConnect reports an error with which Postgres refused a
// connection for good (a database that does not exist, a failed
// authentication, a role it does not know or may not connect), and a
// short reason. Everything else (connection refused, 57P03 starting up,
// 53300 too many connections, a timeout) may pass and is not permanent.
func IsPermanentConnect(err error) (reason string, ok bool) {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return "", false
	}
	reason, ok = permanentConnect[pgErr.Code]
	return reason, ok
}
