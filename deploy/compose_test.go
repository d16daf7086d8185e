package deploy

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/oncehook/oncehook/internal/doccheck"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/sink"
)

// TestDeployFiles checks the real docker-compose.yml, Dockerfile and load
// balancer configuration against cmd/oncehook and docs/configuration.md.
// It needs no Docker.
func TestDeployFiles(t *testing.T) {
	read := func(p string) ([]byte, error) { return os.ReadFile(filepath.Join("..", filepath.FromSlash(p))) }
	known, err := doccheck.ReadVars(filepath.Join("..", "cmd", "oncehook"))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := read(doccheck.ConfigReference)
	if err != nil {
		t.Fatal(err)
	}
	documented := doccheck.DocumentedVars(string(ref))
	// Guards against a scan that silently stopped matching.
	if len(known) < 10 || len(documented) < 10 {
		t.Fatalf("found %d variables in cmd/oncehook and %d in %s: are the scans still right?",
			len(known), len(documented), doccheck.ConfigReference)
	}
	if !known["DESTINATIONS"] || !known[doccheck.DestinationPattern+"URL"] {
		t.Fatalf("found no DESTINATIONS or %sURL in cmd/oncehook: is the scan of destinations.go still right?", doccheck.DestinationPattern)
	}
	for _, p := range check(read, known, documented) {
		t.Error(p)
	}
}

// TestCheckerFails makes sure the checker can fail: a small stack that
// passes, and one broken edit of it per problem that must be reported.
func TestCheckerFails(t *testing.T) {
	known := map[string]bool{"DATABASE_URL": true, "SHUTDOWN_TIMEOUT": true, "LOG_LEVEL": true, "WORKERS": true, "SINK_URL": true,
		"DESTINATIONS": true, "DESTINATION_<NAME>_URL": true, "DESTINATION_<NAME>_TYPES": true, "DESTINATION_<NAME>_LIVEMODE": true}
	documented := map[string]bool{"DATABASE_URL": true, "SHUTDOWN_TIMEOUT": true, "LOG_LEVEL": true, "SINK_URL": true,
		"DESTINATIONS": true, "DESTINATION_<NAME>_URL": true, "DESTINATION_<NAME>_TYPES": true}
	readFrom := func(files map[string]string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			s, ok := files[p]
			if !ok {
				return nil, fmt.Errorf("%s: %w", p, os.ErrNotExist)
			}
			return []byte(s), nil
		}
	}
	if ps := check(readFrom(fixture), known, documented); len(ps) != 0 {
		t.Fatalf("the good fixture has problems:\n%s", strings.Join(ps, "\n"))
	}

	const compose, docker, lb = "docker-compose.yml", "Dockerfile", "deploy/haproxy/haproxy.cfg"
	cases := []struct{ name, file, old, new, want string }{
		{"unknown variable, map form", compose, "    LOG_LEVEL: info\n", "    LOG_LEVEL: info\n    WORKER_COUNT: \"8\"\n",
			"receiver1: sets WORKER_COUNT, which cmd/oncehook does not read"},
		{"unknown variable, list form", compose, "SHUTDOWN_TIMEOUT=30s]", "SHUTDOWN_TIMEOUT=30s, LOGLEVEL=debug]",
			"receiver2: sets LOGLEVEL, which cmd/oncehook does not read"},
		{"undocumented variable", compose, "    LOG_LEVEL: info\n", "    LOG_LEVEL: info\n    WORKERS: 8\n",
			"receiver1: sets WORKERS, which docs/configuration.md does not document"},
		{"missing service", compose, "\n  redis: {", "\n  cache: {", `no service "redis"`},
		{"no Postgres healthcheck", compose, ", healthcheck: {test: [CMD, pg_isready]}", "", "postgres: no healthcheck"},
		{"bench outside its profile", compose, "bench: {profiles: [bench], ", "bench: {", `bench: not in the "bench" profile`},
		{"not waiting for healthy Redis", compose, "redis: {condition: service_healthy}", "redis: {condition: service_started}",
			"receiver1: must depend on redis with condition service_healthy"},
		{"grace period shorter than the drain", compose, "stop_grace_period: 40s", "stop_grace_period: 20s",
			"receiver1: stop_grace_period 20s is shorter than SHUTDOWN_TIMEOUT 30s"},
		{"lb config missing", compose, "./deploy/haproxy/haproxy.cfg:", "./deploy/haproxy/other.cfg:", "lb: deploy/haproxy/other.cfg"},
		{"lb without /readyz check", lb, "uri /readyz", "uri /healthz", "no health check GET /readyz"},
		{"lb misses a receiver", lb, "    server receiver2 receiver2:8080\n", "", "no server line for receiver2"},
		{"lb without checks", lb, "default-server check inter 2s", "default-server inter 2s", "server receiver1 is not health-checked"},
		{"root final stage", docker, "USER 65532:65532", "USER root", "Dockerfile: the final stage runs as root"},
		{"root by default", docker, "USER 65532:65532\n", "", "Dockerfile: the final stage runs as root"},
		{"cgo", docker, "ENV CGO_ENABLED=0\n", "", "Dockerfile: a go build without CGO_ENABLED=0"},
		{"old command", docker, "./cmd/oncehook", "./cmd/receiver", "Dockerfile: no go build of ./cmd/oncehook"},
		{"old binary", docker, `ENTRYPOINT ["/oncehook"]`, `ENTRYPOINT ["/receiver"]`, "Dockerfile: the final stage's ENTRYPOINT does not run /oncehook"},
		// Destinations.
		{"SINK_URL alongside DESTINATIONS", compose, "    LOG_LEVEL: info\n", "    LOG_LEVEL: info\n    SINK_URL: stdout\n",
			"receiver1: sets both SINK_URL and DESTINATIONS"},
		{"SINK_URL instead of DESTINATIONS", compose, "    DESTINATIONS: billing,analytics\n", "    SINK_URL: stdout\n",
			"receiver1: set DESTINATIONS"},
		{"empty DESTINATIONS", compose, "DESTINATIONS: billing,analytics", `DESTINATIONS: ""`, "receiver1: DESTINATIONS is empty"},
		{"listed destination without a URL", compose, "DESTINATIONS: billing,analytics", "DESTINATIONS: billing,analytics,crm",
			"receiver1: destination crm has no DESTINATION_CRM_URL"},
		{"URL of a destination not listed", compose, "    DESTINATION_ANALYTICS_URL: stdout\n",
			"    DESTINATION_ANALYTICS_URL: stdout\n    DESTINATION_CRM_URL: stdout\n",
			"receiver1: sets DESTINATION_CRM_URL, which belongs to no destination in DESTINATIONS"},
		{"list form, URL missing", compose, "DESTINATION_MAIN_URL=stdout, ", "", "receiver2: destination main has no DESTINATION_MAIN_URL"},
		{"empty URL", compose, "    DESTINATION_ANALYTICS_URL: stdout\n", "    DESTINATION_ANALYTICS_URL: ${DESTINATION_ANALYTICS_URL:-}\n",
			"receiver1: destination analytics has no DESTINATION_ANALYTICS_URL"},
		{"destination name not valid", compose, "DESTINATIONS: billing,analytics", "DESTINATIONS: Billing,analytics",
			`receiver1: DESTINATIONS: destination name "Billing"`},
		{"destination listed twice", compose, "DESTINATIONS: billing,analytics", "DESTINATIONS: billing,analytics,billing",
			`receiver1: DESTINATIONS: "billing" is listed twice`},
		{"destinations sharing variables", compose, "DESTINATIONS: billing,analytics", "DESTINATIONS: billing,analytics,eu-billing,eu_billing",
			`receiver1: DESTINATIONS: "eu-billing" and "eu_billing" both use the variables DESTINATION_EU_BILLING_*`},
		{"unsupported sink", compose, "    DESTINATION_ANALYTICS_URL: stdout\n", "    DESTINATION_ANALYTICS_URL: ftp://example.com/events\n",
			"receiver1: DESTINATION_ANALYTICS_URL: unsupported scheme"},
		{"Redis sink without a stream", compose, "?stream=billing", "", "receiver1: DESTINATION_BILLING_URL: a Redis sink needs ?stream=NAME"},
		{"bad type pattern", compose, `DESTINATION_BILLING_TYPES: "invoice.*"`, `DESTINATION_BILLING_TYPES: "invoice.*, customer created"`,
			`receiver1: DESTINATION_BILLING_TYPES: event type pattern "customer created"`},
		{"bad livemode", compose, "    DESTINATION_ANALYTICS_URL: stdout\n", "    DESTINATION_ANALYTICS_URL: stdout\n    DESTINATION_BILLING_LIVEMODE: prod\n",
			"receiver1: DESTINATION_BILLING_LIVEMODE is \"prod\", want live, test or both"},
		{"destination setting cmd/oncehook does not read", compose, "    DESTINATION_ANALYTICS_URL: stdout\n",
			"    DESTINATION_ANALYTICS_URL: stdout\n    DESTINATION_BILLING_WORKER: \"4\"\n",
			"receiver1: sets DESTINATION_BILLING_WORKER, which cmd/oncehook does not read (as DESTINATION_<NAME>_WORKER)"},
		{"overlapping destination names", compose, "DESTINATIONS: billing,analytics\n", "DESTINATIONS: billing,analytics,billing_eu\n    DESTINATION_BILLING_EU_URL: stdout\n    DESTINATION_BILLING_EU_TIPES: x\n",
			"receiver1: sets DESTINATION_BILLING_EU_TIPES, which cmd/oncehook does not read (as DESTINATION_<NAME>_TIPES)"},
		{"undocumented destination setting", compose, "    DESTINATION_ANALYTICS_URL: stdout\n",
			"    DESTINATION_ANALYTICS_URL: stdout\n    DESTINATION_BILLING_LIVEMODE: live\n",
			"receiver1: sets DESTINATION_BILLING_LIVEMODE, which docs/configuration.md does not document (as DESTINATION_<NAME>_LIVEMODE)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := maps.Clone(fixture)
			if strings.Count(files[c.file], c.old) != 1 {
				t.Fatalf("%s: %q is not in the fixture exactly once", c.file, c.old)
			}
			files[c.file] = strings.Replace(files[c.file], c.old, c.new, 1)
			ps := check(readFrom(files), known, documented)
			if !slices.ContainsFunc(ps, func(p string) bool { return strings.Contains(p, c.want) }) {
				t.Errorf("want a problem containing %q, got:\n%s", c.want, strings.Join(ps, "\n"))
			}
		})
	}
}

// fixture is a small stack the checker passes. receiver2 sets its
// environment in list form.
var fixture = map[string]string{
	"docker-compose.yml": `
x-receiver: &receiver
  environment:
    DATABASE_URL: postgres://u:p@postgres:5432/db
    SHUTDOWN_TIMEOUT: ${SHUTDOWN_TIMEOUT:-30s}
    LOG_LEVEL: info
    DESTINATIONS: billing,analytics
    DESTINATION_BILLING_URL: ${DESTINATION_BILLING_URL:-redis://redis:6379/1?stream=billing&maxlen=1000}
    DESTINATION_BILLING_TYPES: "invoice.*"
    DESTINATION_ANALYTICS_URL: stdout
  stop_grace_period: 40s
  depends_on:
    postgres: {condition: service_healthy}
    redis: {condition: service_healthy}
services:
  postgres: {image: postgres:16, healthcheck: {test: [CMD, pg_isready]}}
  redis: {image: redis:7, healthcheck: {test: [CMD, redis-cli, ping]}}
  receiver1:
    <<: *receiver
  receiver2:
    <<: *receiver
    environment: [DATABASE_URL=postgres://u:p@postgres:5432/db, DESTINATIONS=main, DESTINATION_MAIN_URL=stdout, SHUTDOWN_TIMEOUT=30s]
  lb:
    image: haproxy:3.0
    volumes: ["./deploy/haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"]
  bench-sink: {profiles: [bench], command: [sink]}
  bench: {profiles: [bench], command: [run]}
`,
	"Dockerfile": `FROM golang:1.26 AS build
ENV CGO_ENABLED=0
COPY . .
FROM build AS build-oncehook
RUN go build \
    -o /out/oncehook ./cmd/oncehook
FROM gcr.io/distroless/static-debian12 AS oncehook
COPY --from=build-oncehook /out/oncehook /oncehook
USER 65532:65532
ENTRYPOINT ["/oncehook"]
`,
	"deploy/haproxy/haproxy.cfg": `
backend receivers
    option httpchk
    http-check send meth GET uri /readyz
    default-server check inter 2s
    server receiver1 receiver1:8080
    server receiver2 receiver2:8080
`,
}

type service struct {
	Environment     any      `yaml:"environment"` // map or list of NAME=value
	DependsOn       any      `yaml:"depends_on"`  // list or map
	Healthcheck     any      `yaml:"healthcheck"`
	StopGracePeriod string   `yaml:"stop_grace_period"`
	Profiles        []string `yaml:"profiles"`
	Volumes         []string `yaml:"volumes"`
}

// check reads docker-compose.yml, the Dockerfile and the lb's configuration
// through read (by path from the repository root) and returns the problems.
func check(read func(string) ([]byte, error), known, documented map[string]bool) []string {
	var ps []string
	fail := func(format string, a ...any) { ps = append(ps, fmt.Sprintf(format, a...)) }

	if src, err := read("Dockerfile"); err != nil {
		fail("%v", err)
	} else {
		checkDockerfile(string(src), fail)
	}

	src, err := read("docker-compose.yml")
	if err != nil {
		return append(ps, err.Error())
	}
	var compose struct{ Services map[string]service }
	if err := yaml.Unmarshal(src, &compose); err != nil {
		return append(ps, "docker-compose.yml: "+err.Error())
	}
	svcs := compose.Services
	for _, name := range []string{"postgres", "redis", "receiver1", "receiver2", "lb", "bench-sink", "bench"} {
		if _, ok := svcs[name]; !ok {
			fail("docker-compose.yml: no service %q", name)
		}
	}
	for _, name := range []string{"postgres", "redis"} {
		if s, ok := svcs[name]; ok && s.Healthcheck == nil {
			fail("%s: no healthcheck, so the receivers (service_healthy) would never start", name)
		}
	}
	for _, name := range []string{"bench-sink", "bench"} {
		if s, ok := svcs[name]; ok && !slices.Contains(s.Profiles, "bench") {
			fail(`%s: not in the "bench" profile`, name)
		}
	}

	var receivers []string
	for name := range svcs {
		if strings.HasPrefix(name, "receiver") {
			receivers = append(receivers, name)
		}
	}
	slices.Sort(receivers)
	for _, name := range receivers {
		checkReceiver(name, svcs, known, documented, fail)
	}
	if lb, ok := svcs["lb"]; ok {
		checkLB(read, lb, receivers, fail)
	}
	return ps
}

func checkReceiver(name string, svcs map[string]service, known, documented map[string]bool, fail func(string, ...any)) {
	s := svcs[name]
	env := map[string]string{}
	switch e := s.Environment.(type) {
	case map[string]any:
		for k, v := range e {
			if v != nil {
				env[k] = fmt.Sprint(v)
			} else {
				env[k] = ""
			}
		}
	case []any:
		for _, item := range e {
			k, v, _ := strings.Cut(fmt.Sprint(item), "=")
			env[k] = v
		}
	case nil:
	default:
		fail("%s: environment is neither a map nor a list", name)
	}
	generic := checkDestinations(name, env, known, fail)
	for _, k := range slices.Sorted(maps.Keys(env)) {
		g, as := k, ""
		if d, ok := generic[k]; ok {
			g, as = d, " (as "+d+")"
		}
		if !known[g] {
			fail("%s: sets %s, which cmd/oncehook does not read%s", name, k, as)
		}
		if !doccheck.IsDocumented(documented, g) {
			fail("%s: sets %s, which docs/configuration.md does not document%s", name, k, as)
		}
	}

	for _, dep := range []string{"postgres", "redis"} {
		d, _ := s.DependsOn.(map[string]any)
		c, _ := d[dep].(map[string]any)
		if c["condition"] != "service_healthy" {
			fail("%s: must depend on %s with condition service_healthy", name, dep)
		}
	}

	// SIGKILL must not cut the drain short.
	shutdown, err := time.ParseDuration(interpolate(env["SHUTDOWN_TIMEOUT"]))
	if err != nil {
		fail("%s: set SHUTDOWN_TIMEOUT to a Go duration, so that stop_grace_period can be checked against it", name)
		return
	}
	grace := 10 * time.Second // Compose's default
	if s.StopGracePeriod != "" {
		if grace, err = time.ParseDuration(interpolate(s.StopGracePeriod)); err != nil {
			fail("%s: stop_grace_period: %v", name, err)
		}
	}
	if grace < shutdown {
		fail("%s: stop_grace_period %s is shorter than SHUTDOWN_TIMEOUT %s", name, grace, shutdown)
	}
}

// destinationPrefix is the start of destination name's variables, as the
// receiver spells it: DESTINATION_<NAME>_, upper-cased, with - as _.
func destinationPrefix(name string) string {
	return "DESTINATION_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_"
}

// checkDestinations checks a receiver's routing as the receiver would at
// start: DESTINATIONS (and not SINK_URL) lists valid, distinct names, each
// with a DESTINATION_<NAME>_URL the sink package accepts, valid _TYPES and
// _LIVEMODE, and no DESTINATION_* variable for a name not listed. It returns
// the generic name (DESTINATION_<NAME>_URL) of each DESTINATION_* variable
// set, for the known and documented checks.
func checkDestinations(name string, env map[string]string, known map[string]bool, fail func(string, ...any)) map[string]string {
	list, hasList := env["DESTINATIONS"]
	if _, ok := env["SINK_URL"]; ok && hasList {
		fail("%s: sets both SINK_URL and DESTINATIONS, which the receiver refuses: keep DESTINATIONS", name)
	}
	if !hasList {
		fail("%s: set DESTINATIONS (with each destination's DESTINATION_<NAME>_URL): this file shows routing events to destinations", name)
	} else if strings.TrimSpace(interpolate(list)) == "" {
		fail("%s: DESTINATIONS is empty, so the receiver would fall back to SINK_URL", name)
		hasList = false
	}

	var dests []string
	byPrefix := map[string]string{}
	if hasList {
		for _, d := range strings.Split(interpolate(list), ",") {
			d = strings.TrimSpace(d)
			if err := route.ValidName(d); err != nil {
				fail("%s: DESTINATIONS: %v", name, err)
				continue
			}
			p := destinationPrefix(d)
			if other, ok := byPrefix[p]; ok {
				if other == d {
					fail("%s: DESTINATIONS: %q is listed twice", name, d)
				} else {
					fail("%s: DESTINATIONS: %q and %q both use the variables %s*", name, other, d, p)
				}
				continue
			}
			byPrefix[p] = d
			dests = append(dests, d)
		}
	}
	for _, d := range dests {
		p := destinationPrefix(d)
		url := interpolate(env[p+"URL"])
		if url == "" {
			fail("%s: destination %s has no %sURL", name, d, p)
		} else if _, err := sink.ParseURL(url); err != nil {
			fail("%s: %sURL: %v", name, p, err)
		}
		if types, ok := env[p+"TYPES"]; ok && strings.TrimSpace(interpolate(types)) != "*" {
			for _, t := range strings.Split(interpolate(types), ",") {
				if err := route.ValidPattern(strings.TrimSpace(t)); err != nil {
					fail("%s: %sTYPES: %v", name, p, err)
				}
			}
		}
		if lm, ok := env[p+"LIVEMODE"]; ok {
			if v := route.Livemode(interpolate(lm)); v != route.Live && v != route.Test && v != route.Both {
				fail("%s: %sLIVEMODE is %q, want live, test or both", name, p, v)
			}
		}
	}

	generic := map[string]string{}
	for k := range env {
		if !strings.HasPrefix(k, "DESTINATION_") {
			continue
		}
		// With a and a-b listed, DESTINATION_A_B_URL is a-b's URL: prefer
		// the prefix that leaves a known field, then the longest.
		g, gKnown, gLen := "", false, 0
		for p := range byPrefix {
			field, ok := strings.CutPrefix(k, p)
			if !ok {
				continue
			}
			c := doccheck.DestinationPattern + field
			if g == "" || known[c] && !gKnown || known[c] == gKnown && len(p) > gLen {
				g, gKnown, gLen = c, known[c], len(p)
			}
		}
		if g == "" {
			fail("%s: sets %s, which belongs to no destination in DESTINATIONS (the receiver refuses to start)", name, k)
			continue
		}
		generic[k] = g
	}
	return generic
}

// interpolate resolves Compose's ${NAME:-default} and ${NAME-default} to
// their defaults.
func interpolate(s string) string {
	return regexp.MustCompile(`\$\{\w+:?-([^}]*)\}`).ReplaceAllString(s, "$1")
}

// checkLB checks the HAProxy configuration the lb mounts: a server line for
// every receiver, health-checked with GET /readyz.
func checkLB(read func(string) ([]byte, error), lb service, receivers []string, fail func(string, ...any)) {
	path := ""
	for _, v := range lb.Volumes {
		src, _, _ := strings.Cut(v, ":")
		if p, ok := strings.CutPrefix(src, "./"); ok {
			path = p
		}
	}
	if path == "" {
		fail("lb: mounts no configuration file from the repository")
		return
	}
	cfg, err := read(path)
	if err != nil {
		fail("lb: %v", err)
		return
	}
	defaultCheck, readyz := false, false
	servers := map[string]bool{} // host -> has `check`
	for _, line := range strings.Split(string(cfg), "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		l := " " + strings.Join(f, " ") + " "
		switch {
		case len(f) == 0:
		case f[0] == "default-server":
			defaultCheck = defaultCheck || slices.Contains(f, "check")
		case f[0] == "server" && len(f) > 2:
			host, _, _ := strings.Cut(f[2], ":")
			servers[host] = slices.Contains(f, "check")
		case strings.HasPrefix(l, " option httpchk GET /readyz "),
			strings.HasPrefix(l, " http-check send ") && strings.Contains(l, " meth GET ") && strings.Contains(l, " uri /readyz "):
			readyz = true
		}
	}
	if !readyz {
		fail("lb: %s: no health check GET /readyz (http-check send meth GET uri /readyz)", path)
	}
	for _, r := range receivers {
		checked, ok := servers[r]
		if !ok {
			fail("lb: %s: no server line for %s", path, r)
		} else if !checked && !defaultCheck {
			fail("lb: %s: server %s is not health-checked (add check)", path, r)
		}
	}
}

// checkDockerfile checks that every go build has CGO_ENABLED=0 (on its RUN
// line, or from ENV in its stage or the stages it is built FROM), that
// ./cmd/oncehook is built and the final stage's ENTRYPOINT runs /oncehook,
// and that the final stage runs as non-root: a non-root USER, or else a
// :nonroot base.
func checkDockerfile(src string, fail func(string, ...any)) {
	var lines []string
	cur := ""
	for _, l := range strings.Split(src, "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "#") {
			continue
		}
		if s, ok := strings.CutSuffix(t, "\\"); ok {
			cur += s + " "
			continue
		}
		lines = append(lines, cur+t)
		cur = ""
	}

	cgoOff := map[string]bool{} // stage -> ENV CGO_ENABLED=0 applies
	stage, base, user, entrypoint, builds, oncehook := "", "", "", "", 0, false
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			f = slices.DeleteFunc(f[1:], func(s string) bool { return strings.HasPrefix(s, "--") })
			base, stage, user, entrypoint = f[0], "", "", ""
			if len(f) == 3 && strings.EqualFold(f[1], "as") {
				stage = f[2]
			}
			cgoOff[stage] = cgoOff[base]
		case "ENV":
			cgoOff[stage] = cgoOff[stage] || strings.Contains(l, "CGO_ENABLED=0")
		case "USER":
			user, _, _ = strings.Cut(f[1], ":")
		case "ENTRYPOINT":
			entrypoint = strings.Join(f[1:], " ")
		case "RUN":
			if strings.Contains(l, "go build") {
				builds++
				oncehook = oncehook || strings.Contains(l, "./cmd/oncehook")
				if !cgoOff[stage] && !strings.Contains(l, "CGO_ENABLED=0") {
					fail("Dockerfile: a go build without CGO_ENABLED=0: %s", l)
				}
			}
		}
	}
	if builds == 0 {
		fail("Dockerfile: no go build")
	}
	if !oncehook {
		fail("Dockerfile: no go build of ./cmd/oncehook")
	}
	if !strings.HasPrefix(entrypoint, `["/oncehook"`) {
		fail("Dockerfile: the final stage's ENTRYPOINT does not run /oncehook: %s", entrypoint)
	}
	if user == "root" || user == "0" || (user == "" && !strings.Contains(base, ":nonroot")) {
		fail("Dockerfile: the final stage runs as root: add a numeric non-root USER or use a :nonroot image")
	}
}
