package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
)

// commandPaths are every command and subcommand of oncehook ("" is the
// root, which serves).
var commandPaths = []string{"", "serve", "migrate", "send-test-event", "events", "events list", "events show", "replay",
	"destinations", "reconcile", "stripe", "stripe endpoint", "stripe endpoint create", "version", "config", "completion", "completion bash", "completion zsh", "help"}

// TestHelpHasNoSideEffects runs every command with --help (and -h, and
// `help CMD`) with a complete configuration around an empty schema: each
// exits 0 with its usage, and afterwards the schema is still empty (no
// migration ran), the listen and admin addresses are free (nothing
// listened), and send-test-event posted nothing.
func TestHelpHasNoSideEffects(t *testing.T) {
	t.Parallel()
	dbURL := testenv.DatabaseURL(t)
	empty := testenv.EmptySchema(t, dbURL)
	schema := empty.Config().ConnConfig.RuntimeParams["search_path"]
	var posts atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { posts.Add(1) }))
	t.Cleanup(target.Close)
	listen, admin := testenv.FreeAddr(t), testenv.FreeAddr(t)
	env := receiverEnv(
		"DATABASE_URL="+schemaURL(dbURL, schema),
		"REDIS_URL="+testenv.RedisURL(t),
		"STRIPE_WEBHOOK_SECRET="+harness.Secret,
		"LISTEN_ADDR="+listen, "ADMIN_ADDR="+admin,
		"ADMIN_TOKEN=0123456789abcdef0123456789abcdef",
		"STRIPE_API_KEY="+reconcileKey, "STRIPE_API_BASE="+target.URL, "RECONCILE_INTERVAL=1s",
		"SINK_URL="+target.URL,
	)

	for _, path := range commandPaths {
		cmd := strings.Fields(path)
		runs := [][]string{append(slices.Clone(cmd), "--help"), append(slices.Clone(cmd), "-h")}
		if len(cmd) > 0 && cmd[0] != "help" {
			runs = append(runs, append([]string{"help"}, cmd...))
		}
		if path == "stripe endpoint create" {
			// STRIPE_API_BASE is the target: a request would be counted.
			runs = append(runs, []string{"stripe", "endpoint", "create", "--url", "https://hooks.example.com/webhooks/stripe", "--help"})
		}
		if path == "send-test-event" {
			// Pointed at the target: a post would be counted.
			runs = append(runs, []string{"send-test-event", "--url", target.URL, "--help"}, []string{"send-test-event", "-url", target.URL, "--help"})
		}
		for _, args := range runs {
			res := runBinary(t, env, args...)
			name := "oncehook " + strings.Join(args, " ")
			if res.err != nil {
				t.Errorf("%s: %v\nstdout:\n%s\nstderr:\n%s", name, res.err, res.stdout, res.stderr)
				continue
			}
			if !strings.Contains(res.stdout, "Usage:") || res.stderr != "" {
				t.Errorf("%s: want its usage on stdout and nothing on stderr\nstdout:\n%s\nstderr:\n%s", name, res.stdout, res.stderr)
			}
		}
	}

	var tables int
	if err := empty.QueryRow(context.Background(), "SELECT count(*) FROM pg_tables WHERE schemaname = $1", schema).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("the empty schema has %d tables after the help runs: a --help migrated", tables)
	}
	for _, addr := range []string{listen, admin} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("%s is taken after the help runs: a --help still listens (%v)", addr, err)
			continue
		}
		ln.Close()
	}
	if n := posts.Load(); n != 0 {
		t.Errorf("the target got %d requests: a --help posted or listed", n)
	}
}

// TestHelpFailsWithSideEffects makes sure the test above can fail: the
// same schema, migrated by `oncehook migrate`, has tables.
func TestHelpFailsWithSideEffects(t *testing.T) {
	t.Parallel()
	dbURL := testenv.DatabaseURL(t)
	empty := testenv.EmptySchema(t, dbURL)
	schema := empty.Config().ConnConfig.RuntimeParams["search_path"]
	res := runBinary(t, receiverEnv("DATABASE_URL="+schemaURL(dbURL, schema)), "migrate")
	var tables int
	if err := empty.QueryRow(context.Background(), "SELECT count(*) FROM pg_tables WHERE schemaname = $1", schema).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if res.err != nil || tables == 0 {
		t.Fatalf("migrate: %v, %d tables\nstderr:\n%s", res.err, tables, res.stderr)
	}
}

// TestUnknownCommandsAndArguments: errors exit 1, name the problem and
// point at the help.
func TestUnknownCommandsAndArguments(t *testing.T) {
	t.Parallel()
	env := receiverEnv()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bogus"}, `unknown command "bogus" for "oncehook"`},
		{[]string{"events", "bogus"}, `unknown events command "bogus": want list or show`},
		{[]string{"events", "list", "--nope"}, `unknown flag: --nope (see "oncehook events list --help")`},
		{[]string{"events", "show"}, `usage: oncehook events show EVT_ID`},
		{[]string{"version", "extra"}, `unexpected argument "extra" (see "oncehook version --help")`},
		{[]string{"send-test-event", "--file", "x.json", "--type", "invoice.paid"}, "--type with --file"},
	} {
		res := runBinary(t, env, tc.args...)
		if res.err == nil || !strings.HasPrefix(res.stderr, "oncehook: ") || !strings.Contains(res.stderr, tc.want) {
			t.Errorf("oncehook %s: %v, want exit 1 and %q\nstderr:\n%s", strings.Join(tc.args, " "), res.err, tc.want, res.stderr)
		}
	}
}

// TestCompletion: a bash script, and the completions it asks the binary
// for: subcommands, and --status's values.
func TestCompletion(t *testing.T) {
	t.Parallel()
	env := receiverEnv()
	if res := runBinary(t, env, "completion", "bash"); res.err != nil || !strings.Contains(res.stdout, "__start_oncehook") {
		t.Errorf("completion bash: %v\n%.300s", res.err, res.stdout)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"ev"}, []string{"events"}},
		{[]string{"events", ""}, []string{"list", "show"}},
		{[]string{"events", "list", "--status", ""}, []string{"pending", "delivered", "dead", "unrouted"}},
		{[]string{"replay", "--status", ""}, []string{"dead", "delivered"}},
	} {
		res := runBinary(t, env, append([]string{"__complete"}, tc.args...)...)
		var got []string
		for _, l := range strings.Split(res.stdout, "\n") {
			if l != "" && !strings.HasPrefix(l, ":") {
				name, _, _ := strings.Cut(l, "\t")
				got = append(got, name)
			}
		}
		if res.err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("completing %q: %v, got %q, want %q", tc.args, res.err, got, tc.want)
		}
	}
}
