package service_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/service"
	"github.com/oncehook/oncehook/internal/testenv"
)

// adminService runs an instance with ADMIN_ADDR on a free port and token
// as ADMIN_TOKEN ("" leaves the console off), and returns ADMIN_ADDR's base URL.
func adminService(t *testing.T, token string) string {
	t.Helper()
	cfg := service.Config{ListenAddr: "127.0.0.1:0", AdminAddr: testenv.FreeAddr(t), AdminToken: token,
		Secrets: []string{harness.Secret}, Tolerance: time.Minute}
	svc, err := service.New(context.Background(), cfg, service.WithPool(testenv.Postgres(t)), service.WithRedis(nil), recordTo())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = svc.Stop(ctx)
	})
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return "http://" + cfg.AdminAddr
}

// adminGet GETs url, with a Bearer header when bearer is set, and returns
// the status and the start of the body.
func adminGet(t *testing.T, url, bearer string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}

// guardedAdminPaths tell more than /metrics: memory, the command line and
// goroutines (pprof), hosts, users and databases (the detailed /readyz).
var guardedAdminPaths = []string{"/readyz", "/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/symbol",
	"/debug/pprof/goroutine?debug=1", "/debug/pprof/profile?seconds=1", "/debug/pprof/trace?seconds=0.1"}

// TestAdminPagesTakeTheToken: with ADMIN_TOKEN set, pprof and the detailed
// /readyz on ADMIN_ADDR answer only with the token as a Bearer header, as
// the console's pages do (401 without it or with a wrong one); /metrics
// and the index stay open, for Prometheus. Without ADMIN_TOKEN, they
// answer anyone who reaches ADMIN_ADDR, as documented.
func TestAdminPagesTakeTheToken(t *testing.T) {
	t.Parallel()
	const token = "admin-test-token-0123456789"
	// The subtests run one after the other: a CPU profile is the process's.
	t.Run("token set", func(t *testing.T) {
		base := adminService(t, token)
		for _, path := range guardedAdminPaths {
			for name, bearer := range map[string]string{"no token": "", "a wrong token": token + "x"} {
				code, body := adminGet(t, base+path, bearer)
				if code != http.StatusUnauthorized {
					t.Errorf("GET %s with %s: %d, want 401", path, name, code)
				}
				if strings.Contains(body, "postgres") || strings.Contains(body, "goroutine") {
					t.Errorf("GET %s with %s told: %s", path, name, body)
				}
			}
			if code, body := adminGet(t, base+path, token); code != 200 {
				t.Errorf("GET %s with the token: %d %s, want 200", path, code, body)
			}
		}
		if code, body := adminGet(t, base+"/readyz", token); !strings.Contains(body, `"postgres":"ok"`) {
			t.Errorf("GET /readyz with the token: %d %s, want the detail", code, body)
		}
		for _, path := range []string{"/metrics", "/"} {
			if code, _ := adminGet(t, base+path, ""); code != 200 {
				t.Errorf("GET %s without a token: %d, want 200 (open, as documented)", path, code)
			}
		}
	})
	t.Run("no token", func(t *testing.T) {
		base := adminService(t, "")
		for _, path := range append(guardedAdminPaths, "/metrics", "/") {
			if code, body := adminGet(t, base+path, ""); code != 200 {
				t.Errorf("GET %s without ADMIN_TOKEN: %d %s, want 200", path, code, body)
			}
		}
		if code, _ := adminGet(t, base+"/console/", ""); code != http.StatusNotFound {
			t.Errorf("GET /console/ without ADMIN_TOKEN: %d, want 404", code)
		}
	})
}
