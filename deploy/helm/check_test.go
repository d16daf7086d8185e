package helm

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/sink"
)

// expect is what the values asked for, beyond what every render must have.
type expect struct {
	replicas       int32
	serviceMonitor bool
}

// binary is the command the chart runs: the Dockerfile's final stage puts
// oncehook there.
var binary = []string{"/oncehook"}

// secretVars are the variables that hold secrets: they may only come from a
// Secret. DESTINATION_<NAME>_SIGNING_SECRET is one too (isSecretVar).
var secretVars = []string{"STRIPE_WEBHOOK_SECRET", "DATABASE_URL", "REDIS_URL", "STRIPE_API_KEY", "ADMIN_TOKEN", "SINK_SIGNING_SECRET"}

// sizedMemory is what an instance may hold with the default settings and
// one destination, by the README's Sizing ("about 410 MiB").
var sizedMemory = resource.MustParse("410Mi")

// check returns every problem of a rendered release, each naming the object.
func check(objs []object, want expect) []string {
	var ps []string
	fail := func(format string, args ...any) { ps = append(ps, fmt.Sprintf(format, args...)) }

	byKind := map[string][]object{}
	for _, o := range objs {
		byKind[o.kind] = append(byKind[o.kind], o)
	}
	for kind, same := range byKind {
		switch kind {
		case "Deployment", "Service", "Job", "ServiceMonitor":
		case "Secret":
			fail("the chart renders a Secret (%s): secrets must come from existing Secret objects", same[0].name)
		default:
			fail("an unexpected %s (%s)", kind, same[0].name)
		}
	}
	one := func(kind string) (object, bool) {
		if n := len(byKind[kind]); n != 1 {
			fail("want one %s, got %d", kind, n)
			return object{}, false
		}
		return byKind[kind][0], true
	}
	if n := len(byKind["ServiceMonitor"]); want.serviceMonitor && n != 1 {
		fail("want one ServiceMonitor with serviceMonitor.enabled, got %d", n)
	} else if !want.serviceMonitor && n != 0 {
		fail("a ServiceMonitor although serviceMonitor.enabled is false")
	}

	d, okD := one("Deployment")
	s, okS := one("Service")
	j, okJ := one("Job")
	if !okD {
		return ps
	}
	c := checkDeployment(d.deployment, want, fail)
	if okJ && c != nil {
		checkJob(j.job, c, fail)
	}
	if okS && c != nil {
		var jobPod map[string]string
		if okJ {
			jobPod = j.job.Spec.Template.Labels
		}
		checkService(s.service, d.deployment, c, jobPod, fail)
		for _, m := range byKind["ServiceMonitor"] {
			checkServiceMonitor(m, s, fail)
		}
	}
	return ps
}

// checkDeployment checks the instances and returns their container (nil
// when there is not exactly one).
func checkDeployment(d *appsv1.Deployment, want expect, fail func(string, ...any)) *corev1.Container {
	if d.Spec.Replicas == nil || *d.Spec.Replicas != want.replicas {
		fail("Deployment: replicas %v, want %d", d.Spec.Replicas, want.replicas)
	}
	pod := d.Spec.Template
	if d.Spec.Selector == nil || len(d.Spec.Selector.MatchLabels) == 0 || !subset(d.Spec.Selector.MatchLabels, pod.Labels) {
		fail("Deployment: its selector does not select its own pods (%v)", pod.Labels)
	}
	if n := len(pod.Spec.Containers); n != 1 {
		fail("Deployment: %d containers, want 1", n)
		return nil
	}
	c := &pod.Spec.Containers[0]
	if got := append(slices.Clone(c.Command), c.Args...); !slices.Equal(got, append(slices.Clone(binary), "serve")) {
		fail("Deployment: runs %v, want [%s serve]", got, strings.Join(binary, " "))
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	listen := envValue(c.Env, "LISTEN_ADDR", ":8080")
	if port(listen) != ports["http"] {
		fail("Deployment: LISTEN_ADDR %q is not the http port %d", listen, ports["http"])
	}
	admin := envValue(c.Env, "ADMIN_ADDR", "127.0.0.1:9090")
	if host, _, _ := net.SplitHostPort(admin); (host != "" && host != "0.0.0.0") || port(admin) != ports["admin"] {
		fail("Deployment: ADMIN_ADDR %q: Prometheus cannot scrape it; want \":%d\" (the admin port, on the pod's address)", admin, ports["admin"])
	}
	checkProbe := func(what string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "http" {
			fail("Deployment: %s probe: want GET %s on port http (%d), got %s", what, path, ports["http"], describeProbe(p))
		}
	}
	checkProbe("liveness", c.LivenessProbe, "/healthz")
	checkProbe("readiness", c.ReadinessProbe, "/readyz")

	shutdown, err := time.ParseDuration(envValue(c.Env, "SHUTDOWN_TIMEOUT", "30s"))
	if err != nil {
		fail("Deployment: SHUTDOWN_TIMEOUT: %v", err)
	}
	var sleep time.Duration
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		sleep = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= sleep+shutdown {
		fail("Deployment: terminationGracePeriodSeconds %s is not longer than the preStop sleep (%s) plus SHUTDOWN_TIMEOUT (%s): SIGKILL would cut the drain short",
			describeInt(g), sleep, shutdown)
	}

	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		fail("Deployment: resources: want CPU and memory requests, got %v", c.Resources.Requests)
	}
	if m := c.Resources.Limits.Memory(); m.IsZero() {
		fail("Deployment: resources: no memory limit")
	} else if m.Cmp(sizedMemory) < 0 {
		fail("Deployment: memory limit %s is below the %s an instance may hold with the defaults (README, Sizing)", m, &sizedMemory)
	}
	checkEnv("Deployment", c.Env, fail)
	checkDestinations(c.Env, fail)
	for _, required := range []string{"STRIPE_WEBHOOK_SECRET", "DATABASE_URL"} {
		if v, ok := findEnv(c.Env, required); !ok || v.ValueFrom == nil || v.ValueFrom.SecretKeyRef == nil ||
			(v.ValueFrom.SecretKeyRef.Optional != nil && *v.ValueFrom.SecretKeyRef.Optional) {
			fail("Deployment: %s must come from a Secret, not optional", required)
		}
	}
	return c
}

// checkJob checks the migration: a hook before install and upgrade that
// runs `oncehook migrate` from the instances' image with DATABASE_URL.
func checkJob(j *batchv1.Job, server *corev1.Container, fail func(string, ...any)) {
	hook := strings.Split(j.Annotations["helm.sh/hook"], ",")
	if !slices.Contains(hook, "pre-install") || !slices.Contains(hook, "pre-upgrade") {
		fail("migration Job: hook %q, want pre-install,pre-upgrade (the schema is migrated before new instances start)", j.Annotations["helm.sh/hook"])
	}
	if !slices.Contains(strings.Split(j.Annotations["helm.sh/hook-delete-policy"], ","), "before-hook-creation") {
		fail("migration Job: hook-delete-policy %q lacks before-hook-creation (the next upgrade would find the old Job)", j.Annotations["helm.sh/hook-delete-policy"])
	}
	pod := j.Spec.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyNever && pod.RestartPolicy != corev1.RestartPolicyOnFailure {
		fail("migration Job: restartPolicy %q", pod.RestartPolicy)
	}
	if len(pod.Containers) != 1 {
		fail("migration Job: %d containers, want 1", len(pod.Containers))
		return
	}
	c := pod.Containers[0]
	if got := append(slices.Clone(c.Command), c.Args...); !slices.Equal(got, append(slices.Clone(binary), "migrate")) {
		fail("migration Job: runs %v, want [%s migrate]", got, strings.Join(binary, " "))
	}
	if c.Image != server.Image {
		fail("migration Job: image %q, the instances run %q", c.Image, server.Image)
	}
	checkEnv("migration Job", c.Env, fail)
	if v, ok := findEnv(c.Env, "DATABASE_URL"); !ok || v.ValueFrom == nil || v.ValueFrom.SecretKeyRef == nil {
		fail("migration Job: no DATABASE_URL from a Secret")
	}
}

// checkService checks that the Service selects the instances, and only them.
func checkService(s *corev1.Service, d *appsv1.Deployment, c *corev1.Container, jobPod map[string]string, fail func(string, ...any)) {
	pod := d.Spec.Template.Labels
	if len(s.Spec.Selector) == 0 || !subset(s.Spec.Selector, pod) {
		fail("Service: its selector %v does not select the Deployment's pods %v", s.Spec.Selector, pod)
	}
	if len(s.Spec.Selector) > 0 && subset(s.Spec.Selector, jobPod) {
		fail("Service: its selector also matches the migration Job's pod %v", jobPod)
	}
	var targets []string
	for _, p := range s.Spec.Ports {
		targets = append(targets, p.TargetPort.String())
		if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == p.TargetPort.String() }) {
			fail("Service: port %s targets %s, which the container does not have", p.Name, p.TargetPort.String())
		}
	}
	if !slices.Contains(targets, "http") {
		fail("Service: no port targets http (the webhooks)")
	}
}

// checkServiceMonitor checks that the ServiceMonitor scrapes /metrics on the
// Service's admin port.
func checkServiceMonitor(m object, s object, fail func(string, ...any)) {
	spec, _ := m.generic["spec"].(map[string]any)
	sel, _ := dig(spec, "selector", "matchLabels").(map[string]any)
	labels := map[string]string{}
	for k, v := range sel {
		labels[k], _ = v.(string)
	}
	if len(labels) == 0 || !subset(labels, s.labels) {
		fail("ServiceMonitor: its selector %v does not select the Service (%v)", labels, s.labels)
	}
	eps, _ := spec["endpoints"].([]any)
	if len(eps) != 1 {
		fail("ServiceMonitor: %d endpoints, want 1", len(eps))
		return
	}
	ep, _ := eps[0].(map[string]any)
	var target string
	for _, p := range s.service.Spec.Ports {
		if p.Name == ep["port"] {
			target = p.TargetPort.String()
		}
	}
	if target != "admin" || ep["path"] != "/metrics" {
		fail("ServiceMonitor: scrapes %v on port %v (targets %q), want /metrics on the admin port", ep["path"], ep["port"], target)
	}
}

// checkEnv checks a container's variables: a secret only from a Secret, no
// plain value that looks like one, and only variables the docs document.
func checkEnv(where string, env []corev1.EnvVar, fail func(string, ...any)) {
	docs, err := docsText()
	if err != nil {
		fail("%v", err)
	}
	for _, v := range env {
		switch {
		case isSecretVar(v.Name) && (v.Value != "" || v.ValueFrom == nil || v.ValueFrom.SecretKeyRef == nil):
			fail("%s: env %s: a secret not taken from a Secret", where, v.Name)
		case v.ValueFrom == nil && looksSecret.MatchString(v.Value):
			fail("%s: env %s: its value looks like a secret", where, v.Name)
		}
		if docs != "" && !documented(docs, v.Name) {
			fail("%s: sets %s, which no page of the docs documents", where, v.Name)
		}
	}
}

// checkDestinations checks the destinations as oncehook does at start:
// valid names, each with a URL (a plain one that package sink accepts),
// valid type patterns and livemode, and no DESTINATION_* variable of a name
// not listed.
func checkDestinations(env []corev1.EnvVar, fail func(string, ...any)) {
	list := envValue(env, "DESTINATIONS", "")
	var prefixes []string
	if list != "" {
		for _, d := range strings.Split(list, ",") {
			if err := route.ValidName(d); err != nil {
				fail("Deployment: DESTINATIONS: %v", err)
			}
			p := "DESTINATION_" + strings.ToUpper(strings.ReplaceAll(d, "-", "_")) + "_"
			prefixes = append(prefixes, p)
			if v, ok := findEnv(env, p+"URL"); !ok {
				fail("Deployment: destination %s has no %sURL", d, p)
			} else if v.ValueFrom == nil {
				if _, err := sink.ParseURL(v.Value); err != nil {
					fail("Deployment: %sURL: %v", p, err)
				}
			}
			for _, t := range strings.Split(envValue(env, p+"TYPES", "*"), ",") {
				if err := route.ValidPattern(t); err != nil {
					fail("Deployment: %sTYPES: %v", p, err)
				}
			}
			if lm := route.Livemode(envValue(env, p+"LIVEMODE", "both")); lm != route.Live && lm != route.Test && lm != route.Both {
				fail("Deployment: %sLIVEMODE is %q, want live, test or both", p, lm)
			}
		}
	}
	for _, v := range env {
		if strings.HasPrefix(v.Name, "DESTINATION_") &&
			!slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(v.Name, p) }) {
			fail("Deployment: sets %s, which belongs to no destination in DESTINATIONS", v.Name)
		}
	}
}

// looksSecret matches a Stripe or Standard Webhooks secret, a Stripe key,
// or a URL with a user or password.
var looksSecret = regexp.MustCompile(`whsec_|\b[sr]k_(live|test)_|^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@`)

func isSecretVar(name string) bool {
	return slices.Contains(secretVars, name) ||
		strings.HasPrefix(name, "DESTINATION_") && strings.HasSuffix(name, "_SIGNING_SECRET")
}

// destinationVar splits DESTINATION_<NAME>_<SETTING>; the settings are
// those the docs name after DESTINATION_<NAME>_.
var destinationVar = regexp.MustCompile(`^DESTINATION_[A-Z0-9_]+?_(URL|TYPES|LIVEMODE|SIGNING_SECRET|WORKERS|TIMEOUT|MAX_ATTEMPTS)$`)

// documented tells whether the docs name a variable in code: `NAME`, or a
// destination's as `DESTINATION_<NAME>_SETTING` or `_SETTING` after it.
func documented(docs, name string) bool {
	if strings.Contains(docs, "`"+name+"`") {
		return true
	}
	m := destinationVar.FindStringSubmatch(name)
	return m != nil && (strings.Contains(docs, "`DESTINATION_<NAME>_"+m[1]+"`") || strings.Contains(docs, "`_"+m[1]+"`"))
}

// docsText is README.md and every page under docs/, where the configuration
// reference lives.
var docsText = sync.OnceValues(func() (string, error) {
	root := filepath.Join("..", "..")
	var b strings.Builder
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		return "", fmt.Errorf("reading the docs: %w", err)
	}
	b.Write(readme)
	err = filepath.WalkDir(filepath.Join(root, "docs"), func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || filepath.Ext(p) != ".md" {
			return err
		}
		page, err := os.ReadFile(p)
		b.Write(page)
		return err
	})
	if err != nil && !os.IsNotExist(err) {
		return "", fmt.Errorf("reading the docs: %w", err)
	}
	if !strings.Contains(b.String(), "`DATABASE_URL`") {
		return "", fmt.Errorf("the docs name no `DATABASE_URL`: has the configuration reference moved out of README.md and docs/?")
	}
	return b.String(), nil
})

func findEnv(env []corev1.EnvVar, name string) (corev1.EnvVar, bool) {
	i := slices.IndexFunc(env, func(v corev1.EnvVar) bool { return v.Name == name })
	if i < 0 {
		return corev1.EnvVar{}, false
	}
	return env[i], true
}

// envValue is a plain variable's value, or def when it is not set.
func envValue(env []corev1.EnvVar, name, def string) string {
	if v, ok := findEnv(env, name); ok {
		return v.Value
	}
	return def
}

func port(addr string) int32 {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return -1
	}
	n, err := strconv.ParseInt(p, 10, 32)
	if err != nil {
		return -1
	}
	return int32(n)
}

// subset tells whether every label of sel is in labels.
func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func dig(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

func describeProbe(p *corev1.Probe) string {
	if p == nil || p.HTTPGet == nil {
		return "no HTTP probe"
	}
	return fmt.Sprintf("GET %s on port %s", p.HTTPGet.Path, p.HTTPGet.Port.String())
}

func describeInt(p *int64) string {
	if p == nil {
		return "unset"
	}
	return strconv.FormatInt(*p, 10)
}

func deployment(t *testing.T, objs []object) *appsv1.Deployment {
	t.Helper()
	for _, o := range objs {
		if o.deployment != nil {
			return o.deployment
		}
	}
	t.Fatal("no Deployment rendered")
	return nil
}
