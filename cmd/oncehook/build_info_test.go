package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/migrations"
)

// binaryVersion is `oncehook version` as fields: version, commit, go and
// schema.
func binaryVersion(t *testing.T) map[string]string {
	t.Helper()
	res := runBinary(t, receiverEnv(), "version")
	if res.err != nil {
		t.Fatalf("version: %v\n%s", res.err, res.stderr)
	}
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(res.stdout), "\n") {
		k, v, _ := strings.Cut(l, " ")
		if k == "oncehook" {
			k = "version"
		}
		out[k] = strings.TrimSpace(v)
	}
	return out
}

// TestVersionMatchesBuildInfoAndStartLine: what `oncehook version` prints
// is what a running serve shows: oncehook_build_info's labels on its
// /metrics, and the start line. The version is the one linked in, the
// schema the one the binary migrates to, the commit the build's.
func TestVersionMatchesBuildInfoAndStartLine(t *testing.T) {
	t.Parallel()
	v := binaryVersion(t)
	if v["version"] != testVersion || v["schema"] != strconv.Itoa(migrations.Latest()) || v["commit"] == "" || v["go"] == "" {
		t.Fatalf("oncehook version: %v, want version %s and schema %d", v, testVersion, migrations.Latest())
	}

	_, dbURL := testDB(t)
	addr, adminAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	p := startProcess(t, addr, dbURL, "STRIPE_WEBHOOK_SECRET="+harness.Secret, "ADMIN_ADDR="+adminAddr)

	fams := scrape(t, "http://"+adminAddr+"/metrics")
	series := fams["oncehook_build_info"].GetMetric()
	if len(series) != 1 || series[0].GetGauge().GetValue() != 1 {
		t.Fatalf("oncehook_build_info: %v, want one series at 1", series)
	}
	labels := map[string]string{}
	for _, l := range series[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	for _, k := range []string{"version", "commit", "go", "schema"} {
		if labels[k] != v[k] {
			t.Errorf("oncehook_build_info %s = %q, `oncehook version` says %q", k, labels[k], v[k])
		}
	}

	line := startLine(t, p.stderr.String())
	for k, want := range map[string]string{"version": v["version"], "commit": v["commit"], "schema": v["schema"], "redis": "ok"} {
		if got := fmt.Sprint(line[k]); got != want {
			t.Errorf("start line %s = %s, `oncehook version` says %s: %v", k, got, want, line)
		}
	}
}
