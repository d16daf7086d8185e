package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
)

// TestReadyzReasonsOnlyOnAdmin runs the real binary with a Redis that is
// down: the public /readyz names the state only, the admin one says why,
// and neither shows the Redis password.
func TestReadyzReasonsOnlyOnAdmin(t *testing.T) {
	t.Parallel()
	_, dbURL := testDB(t)
	addr, admin, closed := testenv.FreeAddr(t), testenv.FreeAddr(t), testenv.FreeAddr(t)
	p := startProcess(t, addr, dbURL,
		"STRIPE_WEBHOOK_SECRET="+harness.Secret, "ADMIN_ADDR="+admin,
		"REDIS_URL=redis://:PASSWORDVALUE@"+closed+"/0", "LOG_LEVEL=warn")
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, public := get("http://" + addr + "/readyz")
	if code != 200 || public != `{"status":"ready","postgres":"ok","redis":"down"}` {
		t.Errorf("public /readyz: %d %s", code, public)
	}
	code, detail := get("http://" + admin + "/readyz")
	if code != 200 || !strings.Contains(detail, `"redis":"down"`) || !strings.Contains(detail, "refused") {
		t.Errorf("admin /readyz: %d %s, want the reason Redis is down", code, detail)
	}
	for _, s := range []string{public, detail, p.stderr.String()} {
		if strings.Contains(s, "PASSWORDVALUE") {
			t.Errorf("the Redis password is shown: %s", s)
		}
	}
}
