package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
)

// TestConsoleOnlyWithAToken runs the real binary twice: without
// ADMIN_TOKEN /console/ answers 404 and the start log says why; with it
// the console asks for the token, takes it as a Bearer header, and the
// token is never logged.
func TestConsoleOnlyWithAToken(t *testing.T) {
	t.Parallel()
	_, dbURL := testDB(t)
	const token = "console-token-of-the-real-binary"
	status := func(url, bearer string) int {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	addr, admin := testenv.FreeAddr(t), testenv.FreeAddr(t)
	off := startProcess(t, addr, dbURL, "STRIPE_WEBHOOK_SECRET="+harness.Secret, "ADMIN_ADDR="+admin, "LOG_LEVEL=info")
	if got := status("http://"+admin+"/console/", ""); got != http.StatusNotFound {
		t.Errorf("without ADMIN_TOKEN: /console/ answered %d, want 404", got)
	}
	if got := status("http://"+admin+"/metrics", ""); got != 200 {
		t.Errorf("/metrics: %d", got)
	}
	if !strings.Contains(off.stderr.String(), "console off: set ADMIN_TOKEN") {
		t.Errorf("the start log does not say why the console is off:\n%s", off.stderr.String())
	}

	addr, admin = testenv.FreeAddr(t), testenv.FreeAddr(t)
	on := startProcess(t, addr, dbURL, "STRIPE_WEBHOOK_SECRET="+harness.Secret, "ADMIN_ADDR="+admin, "ADMIN_TOKEN="+token, "LOG_LEVEL=info")
	if got := status("http://"+admin+"/console/", ""); got != http.StatusSeeOther {
		t.Errorf("signed out: /console/ answered %d, want 303 to the sign-in page", got)
	}
	for _, path := range []string{"/console/", "/console/events", "/console/dead"} {
		if got := status("http://"+admin+path, token); got != 200 {
			t.Errorf("Bearer: %s answered %d", path, got)
		}
	}
	if got := status("http://"+admin+"/metrics", ""); got != 200 {
		t.Errorf("/metrics with the console on: %d", got)
	}
	if strings.Contains(on.stderr.String(), token) {
		t.Errorf("the token is in the log:\n%s", on.stderr.String())
	}
}
