package main

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/oncehook/oncehook/migrations"
)

// TestVersion runs `oncehook version` and `oncehook --version`: the same
// four lines, the schema being the latest embedded migration.
func TestVersion(t *testing.T) {
	t.Parallel()
	env := receiverEnv()
	res := runBinary(t, env, "version")
	if res.err != nil {
		t.Fatalf("version: %v\n%s", res.err, res.stderr)
	}
	for _, want := range []string{"oncehook ", "\ncommit   ", "\ngo       " + strings.TrimPrefix(runtime.Version(), "go") + "\n",
		fmt.Sprintf("\nschema   %d\n", migrations.Latest())} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("version: no %q in\n%s", want, res.stdout)
		}
	}
	if lines := strings.Count(res.stdout, "\n"); lines != 4 {
		t.Errorf("version: %d lines, want 4:\n%s", lines, res.stdout)
	}
	for _, flag := range []string{"--version", "-v"} {
		if again := runBinary(t, env, flag); again.err != nil || again.stdout != res.stdout {
			t.Errorf("%s: %v\n%s\nwant the same as version:\n%s", flag, again.err, again.stdout, res.stdout)
		}
	}
}
