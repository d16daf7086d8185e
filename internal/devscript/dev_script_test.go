package devscript

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/testenv"
)

// repo is the repository's root. TestMain builds repo/bin/oncehook, the
// binary dev.sh runs, so that the tests need no `make`.
var repo string

func TestMain(m *testing.M) {
	flag.Parse() // for testing.Verbose
	if err := buildReceiver(); err != nil {
		fmt.Fprintln(os.Stderr, "devscript:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func buildReceiver() error {
	dir, err := os.Getwd()
	if err != nil {
		return err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		if filepath.Dir(dir) == dir {
			return errors.New("no go.mod in or above the working directory")
		}
		dir = filepath.Dir(dir)
	}
	repo = dir
	bin := filepath.Join(repo, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	// Built beside bin/oncehook, then renamed over it: a `make run` of this
	// checkout may be running the old one.
	tmp, err := os.MkdirTemp(bin, ".devscript-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", filepath.Join(tmp, "oncehook"), "./cmd/oncehook")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/oncehook: %v\n%s", err, out)
	}
	if err := os.Rename(filepath.Join(tmp, "oncehook"), filepath.Join(bin, "oncehook")); err != nil {
		return err
	}
	if testing.Verbose() {
		fmt.Printf("devscript: built bin/oncehook in %s\n", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// TestMakeRunPrintsWhatANewUserNeeds runs `make run`'s script on a machine
// with no DATABASE_URL, REDIS_URL, STRIPE_WEBHOOK_SECRET or ADMIN_TOKEN, and
// uses what it prints, as a new user would: the test event command, the
// `events list` and `replay` lines from another terminal, and the console
// with the dev token. Then it runs the script again: the second run reuses
// the Postgres and Redis the first left running, a third keeps a token of
// the user's own unprinted, a fourth, with ADMIN_ADDR empty, says the
// console is off.
func TestMakeRunPrintsWhatANewUserNeeds(t *testing.T) {
	t.Parallel()
	d := newDev(t)
	r := d.start(t)
	r.waitHealthy(t, d.listen, 90*time.Second)

	pgDir := r.match(t, `(?m)^dev: Postgres on 127\.0\.0\.1:`+d.pgPort+` \(data in (.+)\)$`)[1]
	d.notePgDir(t, pgDir)
	r.match(t, `(?m)^dev: Redis on 127\.0\.0\.1:`+d.redisPort+`$`)
	bin := regexp.QuoteMeta(filepath.Join(repo, "bin", "oncehook"))
	devEnv := filepath.Join(d.dir, "dev.env")
	load := regexp.QuoteMeta("set -a; . " + devEnv + "; set +a; ")
	send := r.match(t, `(?m)^  (`+load+bin+` send-test-event --url http://127\.0\.0\.1:`+port(t, d.listen)+`/webhooks/stripe --id (evt_test_[0-9]+))$`)
	sendLine, evtID := send[1], send[2]
	secret := r.match(t, `(?m)^dev: STRIPE_WEBHOOK_SECRET=(whsec_dev_[0-9a-f]{32}) `)[1]
	dbURL := `postgres://postgres@127.0.0.1:` + d.pgPort + `/oncehook?sslmode=disable`
	listLine := r.match(t, `(?m)^  (`+load+bin+` events list)$`)[1]
	replayLine := r.match(t, `(?m)^  (`+load+bin+` replay `+evtID+`)$`)[1]
	r.match(t, `(?m)^Accepted events are delivered to:\n\n  default: every event\n    -> stdout: printed below as JSON lines\n`)
	env := devEnvFile(t, devEnv)
	for name, want := range map[string]string{
		"DATABASE_URL": dbURL, "REDIS_URL": "redis://127.0.0.1:" + d.redisPort + "/0", "STRIPE_WEBHOOK_SECRET": secret,
		"LISTEN_ADDR": d.listen, "ADMIN_ADDR": d.admin,
	} {
		if env[name] != want {
			t.Errorf("dev.env: %s=%q, want %q", name, env[name], want)
		}
	}
	consoleURL := r.match(t, `(?m)^  (http://127\.0\.0\.1:`+port(t, d.admin)+`/console/)$`)[1]
	token := r.match(t, `(?m)sign in with the dev token: (dev_[0-9a-f]{32})\b`)[1]
	if env["ADMIN_TOKEN"] != token {
		t.Errorf("dev.env: ADMIN_TOKEN=%q, want the dev token %q", env["ADMIN_TOKEN"], token)
	}
	if kept, err := os.ReadFile(filepath.Join(d.dir, "dev-admin-token")); err != nil || strings.TrimSpace(string(kept)) != token {
		t.Errorf("dev-admin-token holds %q (%v), want the printed token %q", kept, err, token)
	}
	if fi, err := os.Stat(filepath.Join(d.dir, "dev-admin-token")); err == nil && fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("dev-admin-token has mode %v, want it readable by its owner only", fi.Mode().Perm())
	}

	// From another terminal, pasted as printed.
	if got := r.paste(t, sendLine); !strings.Contains(got, `"accepted"`) {
		t.Errorf("the test event was not accepted:\n%s", got)
	}
	r.eventually(t, 15*time.Second, "`events list` to show "+evtID, func() error {
		if got := r.paste(t, listLine); !strings.Contains(got, evtID) {
			return fmt.Errorf("it printed:\n%s", got)
		}
		return nil
	})
	r.eventually(t, 15*time.Second, "the stdout sink to print "+evtID, func() error {
		return r.sinkLines(evtID, 1)
	})
	if got := r.paste(t, replayLine); !strings.Contains(got, evtID) {
		t.Errorf("replay did not name %s:\n%s", evtID, got)
	}
	r.eventually(t, 15*time.Second, "the stdout sink to print the replayed "+evtID+" again", func() error {
		return r.sinkLines(evtID, 2)
	})

	// The console, signed in with the printed token; without it, the
	// browser is sent to the sign-in page.
	r.eventually(t, 15*time.Second, "the console to answer the dev token", func() error {
		return get(consoleURL, "Bearer "+token, http.StatusOK)
	})
	if err := get(consoleURL, "", http.StatusSeeOther); err != nil {
		t.Errorf("console without the token: %v", err)
	}
	if err := get(consoleURL, "Bearer dev_not_the_token_0123456789", http.StatusUnauthorized); err != nil {
		t.Errorf("console with another token: %v", err)
	}
	r.interrupt(t)

	t.Run("ReusesItsOwnPostgres", func(t *testing.T) {
		pgPid := firstLine(t, filepath.Join(pgDir, "postmaster.pid"))
		redisPid := firstLine(t, filepath.Join(d.dir, "redis", "redis.pid"))
		r := d.start(t)
		r.waitHealthy(t, d.listen, 60*time.Second)
		r.match(t, `(?m)^dev: Postgres on 127\.0\.0\.1:`+d.pgPort+` \(data in `+regexp.QuoteMeta(pgDir)+`\)$`)
		r.match(t, `sign in with the dev token: `+token+`\b`)
		if got := firstLine(t, filepath.Join(pgDir, "postmaster.pid")); got != pgPid {
			t.Errorf("Postgres was restarted: pid %s, was %s\n%s", got, pgPid, r.output())
		}
		if got := firstLine(t, filepath.Join(d.dir, "redis", "redis.pid")); got != redisPid {
			t.Errorf("Redis was restarted: pid %s, was %s\n%s", got, redisPid, r.output())
		}
		// The event of the first run is still there.
		if got := r.paste(t, listLine); !strings.Contains(got, evtID) {
			t.Errorf("`events list` of the second run does not show %s:\n%s", evtID, got)
		}
		r.interrupt(t)
	})

	t.Run("YourADMIN_TOKENIsNotPrinted", func(t *testing.T) {
		yours := "yours_" + testenv.RandomHex(16)
		r := d.start(t, "ADMIN_TOKEN="+yours)
		r.waitHealthy(t, d.listen, 60*time.Second)
		r.match(t, `(?m)^  http://127\.0\.0\.1:`+port(t, d.admin)+`/console/\n  sign in with your ADMIN_TOKEN$`)
		if out := r.stdout.String(); strings.Contains(out, yours) || strings.Contains(out, "dev token") {
			t.Errorf("dev.sh printed a token though ADMIN_TOKEN was set:\n%s", r.output())
		}
		r.eventually(t, 15*time.Second, "the console to answer your token", func() error {
			return get(consoleURL, "Bearer "+yours, http.StatusOK)
		})
		r.interrupt(t)
	})

	t.Run("EmptyADMIN_ADDRTurnsTheConsoleOff", func(t *testing.T) {
		r := d.start(t, "ADMIN_ADDR=")
		r.waitHealthy(t, d.listen, 60*time.Second)
		r.match(t, `(?m)^The console is off \(ADMIN_ADDR is empty\)`)
		if out := r.stdout.String(); strings.Contains(out, "/console/") || strings.Contains(out, "sign in") {
			t.Errorf("dev.sh printed a console URL or token with ADMIN_ADDR empty:\n%s", r.output())
		}
		if err := get(consoleURL, "Bearer "+token, http.StatusOK); err == nil {
			t.Errorf("the console answers with ADMIN_ADDR empty")
		}
		r.interrupt(t)
	})

	t.Run("DestinationsInTheBannerAndDevEnv", func(t *testing.T) {
		hook := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		defer hook.Close()
		billingURL := strings.Replace(hook.URL, "http://", "http://billing:pw_s3cret@", 1) + "/hook?token=tok_s3cret"
		crmPath := filepath.Join(d.dir, "crm.jsonl")
		r := d.start(t, "DESTINATIONS=billing,crm",
			"DESTINATION_BILLING_URL="+billingURL, "DESTINATION_BILLING_TYPES=invoice.*",
			"DESTINATION_BILLING_SIGNING_SECRET=whsec_czNjcmV0LXNpZ25pbmcta2V5LTAxMjM=",
			"DESTINATION_CRM_URL=file://"+crmPath, "DESTINATION_CRM_LIVEMODE=test")
		r.waitHealthy(t, d.listen, 60*time.Second)
		hostPort := strings.TrimPrefix(hook.URL, "http://")
		r.match(t, `(?m)^  billing: invoice\.\*\n    -> http://[^ \n]*`+regexp.QuoteMeta(hostPort+"/hook?token=")+`[^ \n]*\n  crm: every event \(test mode only\)\n    -> `+regexp.QuoteMeta("file://"+crmPath)+`\n`)
		r.match(t, `(?m)^Logs go to stderr below\.$`)
		if out := r.stdout.String(); strings.Contains(out, "s3cret") || strings.Contains(out, "czNjcmV0") || strings.Contains(out, "stdout") {
			t.Errorf("the banner shows a credential or a stdout sink:\n%s", r.output())
		}
		env := devEnvFile(t, devEnv)
		for name, want := range map[string]string{
			"DESTINATIONS": "billing,crm", "DESTINATION_BILLING_URL": billingURL, "DESTINATION_BILLING_TYPES": "invoice.*",
			"DESTINATION_BILLING_SIGNING_SECRET": "whsec_czNjcmV0LXNpZ25pbmcta2V5LTAxMjM=", "DESTINATION_CRM_URL": "file://" + crmPath, "DESTINATION_CRM_LIVEMODE": "test",
		} {
			if env[name] != want {
				t.Errorf("dev.env: %s=%q, want %q", name, env[name], want)
			}
		}
		if _, ok := env["SINK_URL"]; ok {
			t.Errorf("dev.env has SINK_URL, which is not set: %v", env)
		}
		// A command pasted from another terminal sees the destinations.
		if got := r.paste(t, load+bin+" config"); !strings.Contains(got, "\nDESTINATIONS=billing,crm\n") {
			t.Errorf("config with dev.env:\n%s", got)
		}
		r.interrupt(t)
	})
}

// devEnvFile checks that dev.env is readable by its owner only, and reads
// it as the shell does.
func devEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("dev.env: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("dev.env has mode %v, want 0600", fi.Mode().Perm())
	}
	out, err := exec.Command("bash", "-c", `set -a; . "$1"; set +a; env -0`, "bash", path).Output()
	if err != nil {
		t.Fatalf("sourcing dev.env: %v", err)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range strings.Split(string(out), "\x00") {
		name, value, _ := strings.Cut(kv, "=")
		if strings.Contains(string(file), "\n"+name+"=") {
			env[name] = value
		}
	}
	return env
}

// TestMakeRunNamesWhatHoldsThePort has a port of `make run` taken by
// another program: the script must stop at once, name the port and say how
// to free it or which variable picks another one.
func TestMakeRunNamesWhatHoldsThePort(t *testing.T) {
	t.Parallel()

	t.Run("DEV_PG_PORT", func(t *testing.T) {
		t.Parallel()
		other := testenv.StartPostgres(t)
		u, err := url.Parse(other.URL())
		if err != nil {
			t.Fatal(err)
		}
		otherDir := dataDirectory(t, other.URL())
		d := newDev(t)
		d.pgPort = u.Port()
		r := d.start(t)
		stderr := r.mustFail(t)
		pg, _ := strconv.Atoi(d.pgPort)
		for _, want := range []string{
			"port " + d.pgPort + " (DEV_PG_PORT) is taken by another Postgres",
			otherDir,
			"pg_ctl -D " + otherDir + " stop",
			fmt.Sprintf("DEV_PG_PORT=%d make run", pg+1),
		} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr does not say %q:\n%s", want, r.output())
			}
		}
		if dataDirectory(t, other.URL()) != otherDir {
			t.Error("the other Postgres changed")
		}
		if strings.Contains(r.stdout.String(), "dev: Redis on") {
			t.Errorf("Redis was started anyway:\n%s", r.output())
		}
	})

	for _, name := range []string{"ADMIN_ADDR", "LISTEN_ADDR"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0") // a free port, taken at once
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			p, _ := strconv.Atoi(port(t, ln.Addr().String()))
			d := newDev(t)
			want := []string{
				fmt.Sprintf("port %d (%s) is taken by another program", p, name),
				fmt.Sprintf("ss -ltnp 'sport = :%d'", p),
			}
			if name == "ADMIN_ADDR" {
				d.admin = ln.Addr().String()
				want = append(want, fmt.Sprintf("ADMIN_ADDR=127.0.0.1:%d make run", p+1))
			} else {
				d.listen = fmt.Sprintf(":%d", p) // the default's form, all addresses
				want = append(want, fmt.Sprintf("LISTEN_ADDR=:%d make run", p+1))
			}
			r := d.start(t)
			stderr := r.mustFail(t)
			for _, w := range want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, r.output())
				}
			}
			if strings.Contains(r.stdout.String(), "dev: Postgres on") {
				t.Errorf("Postgres was started before the receiver's ports were checked:\n%s", r.output())
			}
		})
	}
}

// TestMakeRunNamesEveryTakenPortAtOnce has every port of `make run` taken:
// one message names each port with its variable, and the ports to use
// instead, before anything starts.
func TestMakeRunNamesEveryTakenPortAtOnce(t *testing.T) {
	t.Parallel()
	d := newDev(t)
	taken := map[string]int{}
	for _, name := range []string{"LISTEN_ADDR", "ADMIN_ADDR", "DEV_PG_PORT", "DEV_REDIS_PORT"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0") // a free port, taken at once
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		p := port(t, ln.Addr().String())
		taken[name], _ = strconv.Atoi(p)
		switch name {
		case "LISTEN_ADDR":
			d.listen = ln.Addr().String()
		case "ADMIN_ADDR":
			d.admin = ln.Addr().String()
		case "DEV_PG_PORT":
			d.pgPort = p
		case "DEV_REDIS_PORT":
			d.redisPort = p
		}
	}
	r := d.start(t)
	stderr := r.mustFail(t)
	if !strings.HasPrefix(stderr, "dev: 4 ports are taken:\n") {
		t.Errorf("stderr does not start with one message for the 4 ports:\n%s", r.output())
	}
	fixes := regexp.MustCompile(`(?m)^dev: give them all other ports at once: (.*) make run$`).FindStringSubmatch(stderr)
	if fixes == nil {
		t.Fatalf("no line gives all the ports at once:\n%s", r.output())
	}
	for name, p := range taken {
		if !strings.Contains(stderr, fmt.Sprintf("port %d (%s) is taken by another program", p, name)) {
			t.Errorf("stderr does not name port %d (%s):\n%s", p, name, r.output())
		}
		if !regexp.MustCompile(`\b` + name + `=(127\.0\.0\.1:)?` + strconv.Itoa(p+1) + `\b`).MatchString(fixes[1]) {
			t.Errorf("the fixes %q lack %s=%d", fixes[1], name, p+1)
		}
	}
	if strings.Contains(r.stdout.String(), "dev: Postgres on") || strings.Contains(r.stdout.String(), "dev: Redis on") {
		t.Errorf("Postgres or Redis started though ports were taken:\n%s", r.output())
	}
}

// dev is one checkout's `make run`: its data directory (DEV_DATA_DIR) and
// its ports.
type dev struct {
	dir               string
	pgPort, redisPort string
	listen, admin     string // host:port

	mu        sync.Mutex
	pgOutside string // the /var/tmp directory of the Postgres data, if dev.sh put it there
}

// newDev picks a data directory and free ports, and stops what dev.sh
// started there when the test ends, as `make clean` does.
func newDev(t *testing.T) *dev {
	t.Helper()
	dir := t.TempDir()
	// As root, Postgres runs as the postgres user, which must reach its data
	// in dir; t.TempDir makes it and its parent private to us.
	for _, p := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d := &dev{
		dir:       dir,
		pgPort:    port(t, testenv.FreeAddr(t)),
		redisPort: port(t, testenv.FreeAddr(t)),
		listen:    testenv.FreeAddr(t),
		admin:     testenv.FreeAddr(t),
	}
	picked := []string{d.pgPort, d.redisPort}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", filepath.Join(repo, "scripts", "dev.sh"), "stop")
		cmd.Dir = repo
		cmd.Env = d.env()
		cmd.WaitDelay = 10 * time.Second
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("scripts/dev.sh stop: %v\n%s", err, out)
		}
		for _, p := range []string{d.pgPort, d.redisPort} {
			if p != picked[0] && p != picked[1] {
				continue // another program's, which the test gave dev.sh
			}
			if c, err := net.DialTimeout("tcp", "127.0.0.1:"+p, time.Second); err == nil {
				c.Close()
				t.Errorf("port %s is still taken after scripts/dev.sh stop", p)
			}
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.pgOutside != "" {
			_ = os.RemoveAll(d.pgOutside)
		}
	})
	return d
}

// notePgDir has the Postgres data deleted with the test's directory if
// dev.sh kept it elsewhere (under /var/tmp, when the postgres user cannot
// reach the test's directory).
func (d *dev) notePgDir(t *testing.T, pgDir string) {
	if strings.HasPrefix(pgDir, d.dir+string(filepath.Separator)) {
		return
	}
	t.Logf("dev.sh keeps the Postgres data outside DEV_DATA_DIR, in %s", pgDir)
	if parent := filepath.Dir(pgDir); strings.HasPrefix(filepath.Base(parent), "oncehook-dev-") {
		d.mu.Lock()
		d.pgOutside = parent
		d.mu.Unlock()
	}
}

// receiverVars are read by dev.sh or the receiver: the tests set the ones
// they need and leave the others unset, as on a new user's machine.
var receiverVars = []string{
	"DATABASE_URL", "REDIS_URL", "REDIS_KEY_PREFIX", "STRIPE_WEBHOOK_SECRET", "ADMIN_TOKEN", "ADMIN_ADDR",
	"LISTEN_ADDR", "SINK_URL", "SINK_SIGNING_SECRET", "DESTINATIONS", "STRIPE_IP_ALLOWLIST", "TRUSTED_PROXIES",
	"TLS_CERT_FILE", "TLS_KEY_FILE", "LOG_FORMAT", "LOG_LEVEL", "PG_EXTRA_OPTS", "REDIS_EXTRA_OPTS",
}

// cleanEnv is our environment without receiverVars, DESTINATION_* and DEV_*.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "DEV_") || strings.HasPrefix(name, "DESTINATION_") || slices.Contains(receiverVars, name) {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// env is the script's environment; extra (NAME=value) overrides it.
func (d *dev) env(extra ...string) []string {
	env := append(cleanEnv(),
		"DEV_DATA_DIR="+d.dir,
		"DEV_PG_PORT="+d.pgPort,
		"DEV_REDIS_PORT="+d.redisPort,
		"LISTEN_ADDR="+d.listen,
		"ADMIN_ADDR="+d.admin,
		// Throwaway clusters: trade durability for speed, as testenv does.
		"PG_EXTRA_OPTS=-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
	)
	return append(env, extra...) // exec.Cmd uses the last value of a name
}

// run is one `scripts/dev.sh` process, in a process group of its own, as
// `make run` is in a terminal.
type run struct {
	cmd            *exec.Cmd
	stdout, stderr lockedBuffer
	done           chan struct{}
	err            error // set before done is closed
}

// start runs scripts/dev.sh with d's environment and extra (NAME=value).
func (d *dev) start(t *testing.T, extra ...string) *run {
	t.Helper()
	r := &run{done: make(chan struct{})}
	r.cmd = exec.Command("bash", filepath.Join(repo, "scripts", "dev.sh"))
	r.cmd.Dir = repo
	r.cmd.Env = d.env(extra...)
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Postgres and Redis detach from our pipes; don't hang if one ever holds them open.
	r.cmd.WaitDelay = 10 * time.Second
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		if !r.exited() {
			_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
			<-r.done
		}
	})
	return r
}

func (r *run) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func (r *run) output() string {
	return "--- dev.sh stdout ---\n" + r.stdout.String() + "--- dev.sh stderr ---\n" + r.stderr.String() + "---"
}

// eventually calls f until it returns nil. The test fails with f's last
// error and the script's output when the timeout passes or the script
// exits first.
func (r *run) eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	var err error
	eventually.Require(t, timeout, what, func() bool {
		if err = f(); err != nil && r.exited() {
			t.Fatalf("dev.sh exited (%v) while waiting for %s (%v)\n%s", r.err, what, err, r.output())
		}
		return err == nil
	}, func() string { return fmt.Sprintf("last error: %v\n%s", err, r.output()) })
}

func (r *run) waitHealthy(t *testing.T, listen string, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	r.eventually(t, timeout, "receiver serving /healthz on "+listen, func() error {
		return get("http://"+listen+"/healthz", "", http.StatusOK)
	})
	t.Logf("dev.sh served /healthz after %s", time.Since(start).Round(time.Millisecond))
}

// match fails the test unless the script's stdout matches re, and returns
// the match and its groups.
func (r *run) match(t *testing.T, re string) []string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(r.stdout.String())
	if m == nil {
		t.Fatalf("dev.sh printed no line matching %s\n%s", re, r.output())
	}
	return m
}

// paste runs line as a user who pasted it into another terminal would,
// and returns its output; the test fails if it fails.
func (r *run) paste(t *testing.T, line string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", line)
	cmd.Dir = os.TempDir()
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s\n%s", line, err, out, r.output())
	}
	return string(out)
}

// sinkLines reports whether the stdout sink printed evtID at least n times.
func (r *run) sinkLines(evtID string, n int) error {
	got := 0
	sc := bufio.NewScanner(strings.NewReader(r.stdout.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "{") && strings.Contains(line, `"`+evtID+`"`) {
			got++
		}
	}
	if got < n {
		return fmt.Errorf("printed %d times, want %d", got, n)
	}
	return nil
}

// interrupt does what Ctrl-C does to `make run`: SIGINT to its process
// group. The receiver must stop cleanly, leaving Postgres and Redis up.
func (r *run) interrupt(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(-r.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.done:
		if r.err != nil {
			t.Errorf("the receiver exited with %v after SIGINT\n%s", r.err, r.output())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the receiver did not stop within 30s of SIGINT\n%s", r.output())
	}
}

// mustFail waits for the script to exit, fails the test unless it exited
// non-zero within 30s, and returns its standard error.
func (r *run) mustFail(t *testing.T) string {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("dev.sh still runs after 30s; it should have stopped on the taken port\n%s", r.output())
	}
	var exit *exec.ExitError
	if !errors.As(r.err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("dev.sh exited with %v, want a non-zero status\n%s", r.err, r.output())
	}
	return r.stderr.String()
}

// get fails unless a GET of u, with the Authorization header auth if set,
// answers want.
func get(u, auth string, want int) error {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	client := &http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != want {
		return fmt.Errorf("GET %s: %s, want %d: %s", u, resp.Status, want, body)
	}
	return nil
}

// dataDirectory is the data directory of the Postgres at u.
func dataDirectory(t *testing.T, u string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var dir string
	if err := conn.QueryRow(ctx, "SHOW data_directory").Scan(&dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func firstLine(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line)
}

// lockedBuffer is a bytes.Buffer that a process writes while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
