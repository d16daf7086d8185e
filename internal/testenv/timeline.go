package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// BumpTimeline moves the server to a new timeline, as the promotion of a
// standby does: it stops the server, restarts it in standby mode
// (standby.signal, and no primary to follow) and promotes it with
// pg_ctl promote. Its data stay; open connections are closed. A test
// simulates the commits an asynchronous standby lacked by deleting rows
// before the bump.
func (s *PostgresServer) BumpTimeline(t testing.TB) {
	t.Helper()
	s.Stop(t)
	pgCommand(t, "touch", filepath.Join(s.dir, "standby.signal"))
	s.Start(t)
	pgCommand(t, filepath.Join(pgBinDir(t), "pg_ctl"), "-s", "-w", "-t", "60", "-D", s.dir, "promote")
}

// pgCommand runs a command as the postgres user when root (Postgres's
// files are its), else as ourselves, and fails the test on an error.
func pgCommand(t testing.TB, name string, args ...string) {
	t.Helper()
	if os.Getuid() == 0 {
		args = append([]string{"-u", "postgres", "--", name}, args...)
		name = "runuser"
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = "/"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// pgBinDir is the directory of the Postgres server binaries, found as
// scripts/services.sh finds them: pg_ctl's in PATH, else the newest
// /usr/lib/postgresql/*/bin.
func pgBinDir(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real)
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(dir string) int { // /usr/lib/postgresql/15/bin: 15
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int { return version(a) - version(b) })
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "pg_ctl")); err == nil {
			return dirs[i]
		}
	}
	t.Fatal("pg_ctl not found (Debian package postgresql)")
	return ""
}

// PgBinary is the path of one of the Postgres client or server binaries
// (pg_receivewal, say), failing the test naming the Debian package when
// it is missing.
func PgBinary(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(pgBinDir(t), name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not found in %s (Debian package postgresql-client): %v", name, filepath.Dir(p), err)
	}
	return p
}

// Port is the server's port on 127.0.0.1.
func (s *PostgresServer) Port() string { return s.port }
