package pgerr_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/oncehook/oncehook/internal/pgerr"
	"github.com/oncehook/oncehook/internal/testenv"
)

func TestIsPermanentConnect(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "3D000"}, true},
		{&pgconn.PgError{Code: "28P01"}, true},
		{&pgconn.PgError{Code: "28000"}, true},
		{&pgconn.PgError{Code: "42501"}, true},
		{fmt.Errorf("connecting: %w", errors.Join(syscall.ECONNREFUSED, &pgconn.PgError{Code: "3D000"})), true},
		{&pgconn.PgError{Code: "57P03"}, false}, // the database system is starting up
		{&pgconn.PgError{Code: "53300"}, false}, // too many connections
		{&pgconn.PgError{Code: "40001"}, false},
		{syscall.ECONNREFUSED, false},
		{context.DeadlineExceeded, false},
		{nil, false},
	} {
		if reason, got := pgerr.IsPermanentConnect(tt.err); got != tt.want || got && reason == "" {
			t.Errorf("IsPermanentConnect(%v) = %q, %v; want %v with a reason", tt.err, reason, got, tt.want)
		}
	}
}

// TestIsPermanentConnectFromServer: what a real server answers for a
// database and a role that do not exist, and for a port nobody listens on.
func TestIsPermanentConnectFromServer(t *testing.T) {
	t.Parallel()
	base, err := url.Parse(testenv.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	connect := func(u *url.URL) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, u.String())
		if err == nil {
			_ = conn.Close(ctx)
		}
		return err
	}
	noDB := *base
	noDB.Path = "/oncehook_no_such_db_" + testenv.RandomHex(4)
	noRole := *base
	noRole.User = url.User("oncehook_no_such_role_" + testenv.RandomHex(4))
	refused := *base
	refused.Host = testenv.FreeAddr(t)
	for _, tt := range []struct {
		name string
		u    *url.URL
		want bool
	}{
		{"database does not exist", &noDB, true},
		{"role does not exist", &noRole, true},
		{"connection refused", &refused, false},
	} {
		err := connect(tt.u)
		if err == nil {
			t.Fatalf("%s: connected", tt.name)
		}
		if _, got := pgerr.IsPermanentConnect(err); got != tt.want {
			t.Errorf("%s: IsPermanentConnect(%v) = %v, want %v", tt.name, err, got, tt.want)
		}
	}
}
