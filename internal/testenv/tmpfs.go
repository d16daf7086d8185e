package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Tmpfs is a small filesystem of a test's own, to fill up: a full disk
// under Postgres or under a sink.
type Tmpfs struct {
	Dir    string // where it is mounted
	filler string
}

// MountTmpfs mounts a tmpfs of size bytes on a new directory under /tmp
// (mode 0755, so that the postgres user can reach directories in it). It
// is unmounted when the test ends, passed or failed; the cleanups the
// test registers later (a server using it) run before. Mounting needs
// root: the test fails, saying so, otherwise.
func MountTmpfs(t testing.TB, size int64) *Tmpfs {
	t.Helper()
	if uid := os.Geteuid(); uid != 0 {
		t.Fatalf("mounting a tmpfs needs root, and this test runs as uid %d: run it as root (in a container, or with sudo)", uid)
	}
	if _, err := exec.LookPath("mount"); err != nil {
		t.Fatalf("mount not found (Debian package mount): %v", err)
	}
	dir, err := os.MkdirTemp("", "oncehook-tmpfs-")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0755", size), "tmpfs", dir).CombinedOutput(); err != nil {
		_ = os.Remove(dir)
		t.Fatalf("mounting a tmpfs on %s: %v\n%s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			// Something still holds a file open: detach it now, the
			// kernel frees it when the last one closes.
			if out2, err2 := exec.Command("umount", "-l", dir).CombinedOutput(); err2 != nil {
				t.Errorf("unmounting the tmpfs on %s: %v\n%s\nlazily: %v\n%s", dir, err, out, err2, out2)
				return
			}
			t.Logf("the tmpfs on %s was busy (%s); detached lazily", dir, bytes.TrimSpace(out))
		}
		_ = os.Remove(dir)
	})
	return &Tmpfs{Dir: dir, filler: filepath.Join(dir, "filler")}
}

// PostgresDir makes the directory name in the tmpfs, owned by the postgres
// user with mode 0700, as Postgres wants its data, WAL and tablespace
// directories, and returns its path.
func (fs *Tmpfs) PostgresDir(t testing.TB, name string) string {
	t.Helper()
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("no postgres user (Debian package postgresql creates it): %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir := filepath.Join(fs.Dir, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Avail is the space left, in bytes.
func (fs *Tmpfs) Avail(t testing.TB) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(fs.Dir, &st); err != nil {
		t.Fatalf("statfs %s: %v", fs.Dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// Fill writes a filler file that leaves about leave bytes free.
func (fs *Tmpfs) Fill(t testing.TB, leave int64) {
	t.Helper()
	f, err := os.OpenFile(fs.filler, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for n := fs.Avail(t) - leave; n > 0; n -= int64(len(chunk)) {
		if _, err := f.Write(chunk[:min(n, int64(len(chunk)))]); err != nil {
			t.Fatalf("filling %s: %v", fs.Dir, err)
		}
	}
}

// Free deletes the filler: room again.
func (fs *Tmpfs) Free(t testing.TB) {
	t.Helper()
	if err := os.Remove(fs.filler); err != nil {
		t.Fatalf("freeing %s: %v", fs.Dir, err)
	}
}

// StartDurablePostgres is StartPostgres with Postgres's default durability
// (fsync and synchronous commit on), for tests that crash the server and
// count on every commit it acknowledged surviving.
func StartDurablePostgres(t testing.TB) *PostgresServer {
	t.Helper()
	ensure(t)
	s := &PostgresServer{dir: tempDir(t, "oncehook-pg-"), port: freePort(t), env: []string{"PG_EXTRA_OPTS="}}
	t.Cleanup(func() { stopInCleanup(t, "pg-stop", s.dir) })
	s.Start(t)
	return s
}

// MoveWAL stops the server, moves its pg_wal to dir (empty, owned by the
// postgres user), leaves a symbolic link in its place, as initdb --waldir
// does, and starts it again.
func (s *PostgresServer) MoveWAL(t testing.TB, dir string) {
	t.Helper()
	s.Stop(t)
	wal := filepath.Join(s.dir, "pg_wal")
	if out, err := exec.Command("cp", "-a", wal+"/.", dir).CombinedOutput(); err != nil {
		t.Fatalf("copying %s to %s: %v\n%s", wal, dir, err, out)
	}
	if err := os.RemoveAll(wal); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir, wal); err != nil {
		t.Fatal(err)
	}
	s.Start(t)
}

// Log is the server's log so far.
func (s *PostgresServer) Log(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, "log"))
	if err != nil {
		t.Fatalf("reading the Postgres log: %v", err)
	}
	return string(b)
}

// LogHas reports whether the server's log holds sub.
func (s *PostgresServer) LogHas(t testing.TB, sub string) bool {
	t.Helper()
	return strings.Contains(s.Log(t), sub)
}
