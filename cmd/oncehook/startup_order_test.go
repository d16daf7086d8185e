package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
)

// failFast bounds how long serve may take to give up on a start that
// cannot succeed.
const failFast = 10 * time.Second

// TestProcessPortsInUseFailBeforeMigrating: with LISTEN_ADDR and
// ADMIN_ADDR both taken, serve exits 1 at once with one error naming
// both, and the empty schema DATABASE_URL points at stays empty: the
// addresses are bound before anything is migrated.
func TestProcessPortsInUseFailBeforeMigrating(t *testing.T) {
	t.Parallel()
	var taken []string
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		taken = append(taken, ln.Addr().String())
	}
	dbURL := testenv.DatabaseURL(t)
	empty := testenv.EmptySchema(t, dbURL)
	schema := empty.Config().ConnConfig.RuntimeParams["search_path"]
	env := receiverEnv("DATABASE_URL="+schemaURL(dbURL, schema), "REDIS_URL="+testenv.RedisURL(t),
		"STRIPE_WEBHOOK_SECRET="+harness.Secret, "LISTEN_ADDR="+taken[0], "ADMIN_ADDR="+taken[1])

	mustBuild(t) // the build is not timed
	start := time.Now()
	res := runBinary(t, env, "serve")
	took := time.Since(start)
	if res.err == nil {
		t.Fatalf("serve exited 0 with both addresses taken; stderr:\n%s", res.stderr)
	}
	if took > failFast {
		t.Errorf("serve took %v to fail, want under %v", took, failFast)
	}
	for _, want := range []string{"oncehook: cannot listen (nothing was migrated)", "LISTEN_ADDR=" + taken[0], "ADMIN_ADDR=" + taken[1], "address already in use"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, res.stderr)
		}
	}
	var tables int
	if err := empty.QueryRow(context.Background(), "SELECT count(*) FROM pg_tables WHERE schemaname = $1", schema).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("the schema has %d tables after serve failed to listen: it migrated before binding", tables)
	}
}

// TestProcessPermanentPostgresErrorFailsFast: a DATABASE_URL naming a
// database (or a role) that does not exist ends serve within 10s, with an
// error that names DATABASE_URL, its user kept and its password masked;
// the password appears nowhere in the output.
func TestProcessPermanentPostgresErrorFailsFast(t *testing.T) {
	t.Parallel()
	base, err := url.Parse(testenv.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	const password = "pw-never-shown-4711" // the test server trusts, and ignores it
	for _, tt := range []struct {
		name, why string
		adjust    func(u *url.URL)
	}{
		{"database does not exist", "the database does not exist", func(u *url.URL) {
			u.User = url.UserPassword(base.User.Username(), password)
			u.Path = "/oncehook_missing_" + testenv.RandomHex(4)
		}},
		{"role does not exist", "the role does not exist", func(u *url.URL) {
			u.User = url.UserPassword("oncehook_nobody_"+testenv.RandomHex(4), password)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := *base
			tt.adjust(&u)
			env := receiverEnv("DATABASE_URL="+u.String(), "REDIS_URL="+testenv.RedisURL(t),
				"STRIPE_WEBHOOK_SECRET="+harness.Secret, "LISTEN_ADDR="+testenv.FreeAddr(t), "ADMIN_ADDR=")
			mustBuild(t) // the build is not timed
			start := time.Now()
			res := runBinary(t, env, "serve")
			took := time.Since(start)
			if res.err == nil {
				t.Fatalf("serve exited 0; stderr:\n%s", res.stderr)
			}
			if took > failFast {
				t.Errorf("serve took %v to fail, want under %v", took, failFast)
			}
			for _, want := range []string{"oncehook: DATABASE_URL", u.User.Username() + ":xxxxx@", tt.why, "not retried"} {
				if !strings.Contains(res.stderr, want) {
					t.Errorf("stderr does not say %q:\n%s", want, res.stderr)
				}
			}
			if strings.Contains(res.stderr+res.stdout, password) {
				t.Errorf("the password is shown:\nstdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
			}
			if strings.Contains(res.stderr, "waiting for Postgres") {
				t.Errorf("a permanent error was waited on:\n%s", res.stderr)
			}
		})
	}
}

// TestProcessServesWithRedisUnreachable: an unreachable REDIS_URL is a
// WARN that names it (password masked), the start line says
// redis=unreachable with the version, commit and schema, and a signed
// event sent by send-test-event gets its 200 and reaches the file sink,
// decided through Postgres alone.
func TestProcessServesWithRedisUnreachable(t *testing.T) {
	t.Parallel()
	_, dbURL := testDB(t)
	const password = "redis-pw-never-shown-4711"
	redisURL := "redis://:" + password + "@" + testenv.FreeAddr(t) + "/0"
	sinkPath := filepath.Join(t.TempDir(), "events.jsonl")
	addr := testenv.FreeAddr(t)
	p := startProcess(t, addr, dbURL, "STRIPE_WEBHOOK_SECRET="+harness.Secret, "REDIS_URL="+redisURL,
		"SINK_URL=file://"+sinkPath)

	log := p.stderr.String()
	warns := logLines(t, log, "REDIS_URL is unreachable at start")
	if len(warns) != 1 {
		t.Fatalf("%d warnings that REDIS_URL is unreachable, want 1:\n%s", len(warns), log)
	}
	if w := warns[0]; w["level"] != "WARN" || !strings.Contains(fmt.Sprint(w["redis_url"]), ":xxxxx@") {
		t.Errorf("warning %v: want WARN with redis_url, its password masked", w)
	}
	checkStartLine(t, startLine(t, log), "unreachable")

	id := "evt_noredis_" + runID()
	res := runBinary(t, receiverEnv("STRIPE_WEBHOOK_SECRET="+harness.Secret),
		"send-test-event", "--url", "http://"+addr+"/webhooks/stripe", "--id", id)
	if res.err != nil || !strings.HasPrefix(res.stdout, "200 OK ") {
		t.Fatalf("send-test-event: %v\nstdout:\n%s\nstderr:\n%s\nserve:\n%s", res.err, res.stdout, res.stderr, p.stderr.String())
	}
	eventually.Require(t, 10*time.Second, id+" in the file sink", func() bool {
		b, _ := os.ReadFile(sinkPath)
		return strings.Contains(string(b), `"`+id+`"`)
	}, func() string {
		b, _ := os.ReadFile(sinkPath)
		return "sink:\n" + string(b) + "\nserve:\n" + p.stderr.String()
	})
	if strings.Contains(p.stderr.String(), password) {
		t.Errorf("the Redis password is logged:\n%s", p.stderr.String())
	}
}

// mustBuild builds the binary, or fails the test.
func mustBuild(t *testing.T) {
	t.Helper()
	if _, err := buildOncehook(); err != nil {
		t.Fatal(err)
	}
}

// checkStartLine checks that the start line names what `oncehook
// version` does (the linked version, the commit, the schema the binary
// migrates to) and the Redis state.
func checkStartLine(t *testing.T, line map[string]any, redis string) {
	t.Helper()
	v := binaryVersion(t)
	for k, want := range map[string]string{"version": testVersion, "commit": v["commit"], "schema": v["schema"], "redis": redis} {
		if got := fmt.Sprint(line[k]); got != want || line[k] == nil {
			t.Errorf("start line %s = %v, want %s: %v", k, line[k], want, line)
		}
	}
}
