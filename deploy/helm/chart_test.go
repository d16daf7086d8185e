package helm

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	commonutil "helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"sigs.k8s.io/yaml"
)

// chartDir is the chart under test.
const chartDir = "oncehook"

// kubeVersion is the cluster the chart is rendered for: helm's offline
// default (1.20 in tests) is older than the chart's kubeVersion.
const kubeVersion = "v1.33.0"

// TestChartLints runs what `helm lint --strict` runs (a warning fails too),
// with the chart's defaults and with the values file that turns every
// option on.
func TestChartLints(t *testing.T) {
	for _, file := range []string{"", "testdata/full.yaml"} {
		t.Run("values="+file, func(t *testing.T) {
			for _, p := range lintProblems(t, chartDir, readValues(t, file)) {
				t.Error(p)
			}
		})
	}
}

// TestLintFails makes sure the lint can fail: a copy of the chart with a
// bad Chart.yaml, and one whose template is not valid YAML.
func TestLintFails(t *testing.T) {
	cases := []struct{ name, file, old, new, want string }{
		{"no chart version", "Chart.yaml", "version: 0.1.0\n", "", "version is required"},
		{"broken YAML", "templates/service.yaml", "  type: {{ .Values.service.type }}", "  type: [{{ .Values.service.type }}", "unable to parse YAML"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := brokenCopy(t, c.file, c.old, c.new)
			ps := lintProblems(t, dir, nil)
			t.Logf("problems: %s", strings.Join(ps, "; "))
			if !slices.ContainsFunc(ps, func(p string) bool { return strings.Contains(p, c.want) }) {
				t.Errorf("want a lint problem containing %q, got:\n%s", c.want, strings.Join(ps, "\n"))
			}
		})
	}
}

// lintProblems is what `helm lint --strict` reports: its warnings and errors.
func lintProblems(t *testing.T, dir string, vals map[string]any) []string {
	t.Helper()
	var ps []string
	for _, m := range lint.RunAll(dir, vals, "payments", lint.WithKubeVersion(mustKubeVersion(t))).Messages {
		t.Logf("lint: %s", m)
		if m.Severity >= support.WarningSev {
			ps = append(ps, m.Error())
		}
	}
	return ps
}

// TestDefaultRender renders the chart with its own values, as `helm template`
// does, and checks the manifests.
func TestDefaultRender(t *testing.T) {
	objs, err := render(chartDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ps := check(objs, expect{replicas: 2}); len(ps) > 0 {
		t.Errorf("default values:\n%s", strings.Join(ps, "\n"))
	}
	d := deployment(t, objs)
	env := d.Spec.Template.Spec.Containers[0].Env
	for _, name := range []string{"DESTINATIONS", "REDIS_URL", "STRIPE_API_KEY", "ADMIN_TOKEN"} {
		if v, ok := findEnv(env, name); name == "DESTINATIONS" && ok {
			t.Errorf("%s is set (%+v) with no destinations in the values", name, v)
		} else if name != "DESTINATIONS" && (!ok || v.ValueFrom == nil || v.ValueFrom.SecretKeyRef.Optional == nil || !*v.ValueFrom.SecretKeyRef.Optional) {
			t.Errorf("%s: want an optional secretKeyRef by default, got %+v", name, v)
		}
	}
}

// TestFullRender renders the values file that exercises the options: the
// ServiceMonitor, three destinations (one URL from a Secret, one signed),
// secrets from two Secrets, plain settings, TLS in process.
func TestFullRender(t *testing.T) {
	objs, err := render(chartDir, readValues(t, "testdata/full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if ps := check(objs, expect{replicas: 3, serviceMonitor: true}); len(ps) > 0 {
		t.Errorf("testdata/full.yaml:\n%s", strings.Join(ps, "\n"))
	}
	c := deployment(t, objs).Spec.Template.Spec.Containers[0]
	plain := map[string]string{
		"DESTINATIONS":                    "billing,crm-eu,analytics",
		"DESTINATION_BILLING_URL":         "https://billing.internal/stripe",
		"DESTINATION_BILLING_TYPES":       "invoice.*,customer.subscription.*",
		"DESTINATION_BILLING_LIVEMODE":    "live",
		"DESTINATION_BILLING_WORKERS":     "64",
		"DESTINATION_BILLING_TIMEOUT":     "5s",
		"DESTINATION_ANALYTICS_TYPES":     "*",
		"DESTINATION_CRM_EU_MAX_ATTEMPTS": "20",
		"QUEUE_MAX_BYTES":                 "134217728", // not 1.34217728e+08
		"LOG_LEVEL":                       "debug",
		"SHUTDOWN_TIMEOUT":                "45s",
		"LISTEN_ADDR":                     ":8443",
	}
	for name, want := range plain {
		if v, ok := findEnv(c.Env, name); !ok || v.Value != want || v.ValueFrom != nil {
			t.Errorf("%s: want the value %q, got %+v", name, want, v)
		}
	}
	fromSecret := map[string][2]string{ // variable: Secret, key
		"STRIPE_WEBHOOK_SECRET":              {"stripe", "endpoint-secrets"},
		"DATABASE_URL":                       {"oncehook-db", "DATABASE_URL"},
		"STRIPE_API_KEY":                     {"stripe", "restricted-key"},
		"DESTINATION_CRM_EU_URL":             {"crm-eu", "url"},
		"DESTINATION_BILLING_SIGNING_SECRET": {"oncehook-db", "BILLING_SIGNING_SECRET"},
	}
	for name, want := range fromSecret {
		v, ok := findEnv(c.Env, name)
		if !ok || v.ValueFrom == nil || v.ValueFrom.SecretKeyRef == nil ||
			v.ValueFrom.SecretKeyRef.Name != want[0] || v.ValueFrom.SecretKeyRef.Key != want[1] {
			t.Errorf("%s: want Secret %s key %s, got %+v", name, want[0], want[1], v)
		}
	}
	if _, ok := findEnv(c.Env, "REDIS_URL"); ok {
		t.Error("REDIS_URL is set although secretEnv.REDIS_URL is null")
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Scheme != "HTTPS" {
		t.Errorf("with TLS_CERT_FILE the probes must use HTTPS, got %+v", p)
	}
}

// TestRefusedValues renders values that must not render: a secret inline
// anywhere, a destination oncehook would refuse at start, a variable the
// chart owns, a typo.
func TestRefusedValues(t *testing.T) {
	base := func() map[string]any { return readValues(t, "testdata/full.yaml") }
	cases := []struct {
		name string
		edit func(v map[string]any)
		want string
	}{
		{"secret inline in secretEnv", func(v map[string]any) {
			v["secretEnv"].(map[string]any)["STRIPE_WEBHOOK_SECRET"] = "whsec_abc"
		}, "STRIPE_WEBHOOK_SECRET"},
		{"secret variable in env", func(v map[string]any) { env(v)["DATABASE_URL"] = "postgres://db/oncehook" }, "env.DATABASE_URL is a secret"},
		{"token-like name in env", func(v map[string]any) { env(v)["MY_API_TOKEN"] = "x" }, "env.MY_API_TOKEN is a secret"},
		{"Stripe secret as a plain value", func(v map[string]any) { env(v)["LOG_LEVEL"] = "whsec_abc" }, "env.LOG_LEVEL looks like a Stripe or signing secret"},
		{"API key as a plain value", func(v map[string]any) { env(v)["RECONCILE_TYPES"] = "sk_live_123" }, "env.RECONCILE_TYPES looks like"},
		{"URL with a password in env", func(v map[string]any) { env(v)["STRIPE_API_BASE"] = "https://proxy:hunter2@proxy.internal" },
			"env.STRIPE_API_BASE is a URL with credentials"},
		{"destination URL with a password", func(v map[string]any) {
			dest(v, 0)["url"] = "https://user:pw@billing.internal/stripe"
		}, "destinations[0] (billing).url is a URL with credentials"},
		{"destination URL with url and urlFrom", func(v map[string]any) {
			dest(v, 1)["url"] = "https://crm.internal/"
		}, "set url or urlFrom, not both"},
		{"destination without a URL", func(v map[string]any) { delete(dest(v, 0), "url") }, "url (or urlFrom) is required"},
		{"signing secret inline", func(v map[string]any) { dest(v, 0)["signingSecret"] = "whsec_abc" }, "signingSecret"},
		{"destination name not valid", func(v map[string]any) { dest(v, 0)["name"] = "Billing" }, "name"},
		{"two names, one prefix", func(v map[string]any) {
			v["destinations"] = append(v["destinations"].([]any), map[string]any{"name": "crm_eu", "url": "stdout"})
		}, `destinations[3].name "crm_eu": another destination already uses the variables DESTINATION_CRM_EU_*`},
		{"SINK_URL with destinations", func(v map[string]any) { env(v)["SINK_URL"] = "stdout" }, "env.SINK_URL and destinations are both set"},
		{"a variable the chart sets", func(v map[string]any) { env(v)["ADMIN_ADDR"] = "127.0.0.1:9090" }, "env.ADMIN_ADDR is set by the chart: use the value containerPorts.admin"},
		{"a destination variable in env", func(v map[string]any) { env(v)["DESTINATION_BILLING_TYPES"] = "*" }, "env.DESTINATION_BILLING_TYPES is set by the chart: use the value destinations"},
		{"no DATABASE_URL", func(v map[string]any) { v["secretEnv"].(map[string]any)["DATABASE_URL"] = nil }, "DATABASE_URL"},
		{"optional DATABASE_URL", func(v map[string]any) {
			v["secretEnv"].(map[string]any)["DATABASE_URL"] = map[string]any{"key": "DATABASE_URL", "optional": true}
		}, "secretEnv.DATABASE_URL is required and may not be optional"},
		{"unknown secret variable", func(v map[string]any) {
			v["secretEnv"].(map[string]any)["STRIPE_SECRET"] = map[string]any{"key": "x"}
		}, "STRIPE_SECRET"},
		{"typo in a key", func(v map[string]any) { v["replicas"] = 3 }, "replicas"},
		{"no resources", func(v map[string]any) { v["resources"] = nil }, "resources"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := base()
			c.edit(v)
			_, err := render(chartDir, v)
			t.Logf("refused: %v", err)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("want an error containing %q, got %v", c.want, err)
			}
		})
	}
}

// TestCheckCatchesBrokenCharts breaks a copy of the chart in one place per
// case and makes sure check reports it: the checks can fail.
func TestCheckCatchesBrokenCharts(t *testing.T) {
	const full = "testdata/full.yaml"
	// The cases render the chart's defaults, but for these.
	values := map[string]string{"destination variables misnamed": full, "ServiceMonitor on the webhook port": full}
	cases := []struct{ name, file, old, new, want string }{
		{"liveness on /readyz", "templates/deployment.yaml", "path: /healthz", "path: /readyz",
			"liveness probe: want GET /healthz"},
		{"readiness on the admin port", "templates/deployment.yaml", "path: /readyz\n              port: http", "path: /readyz\n              port: admin",
			"readiness probe: want GET /readyz on port http"},
		{"secret as a plain value", "templates/_env.tpl", "  valueFrom:\n    secretKeyRef:\n      name: {{ $ref.secret | default $root.Values.existingSecret | required (printf \"%s: name its Secret (secret:) or set existingSecret\" $where) | quote }}\n      key: {{ $ref.key | default $name | quote }}\n      {{- if $ref.optional }}\n      optional: true\n      {{- end }}",
			"  value: {{ $ref.key | quote }}", "STRIPE_WEBHOOK_SECRET: a secret not taken from a Secret"},
		{"no hook", "templates/migrate-job.yaml", `"helm.sh/hook": pre-install,pre-upgrade`, `"helm.sh/hook": post-install`,
			"migration Job: hook"},
		{"migrate not run", "templates/migrate-job.yaml", `args: ["migrate"]`, `args: ["serve"]`,
			"migration Job: runs [/oncehook serve]"},
		{"no resources", "templates/deployment.yaml", `{{- required "resources: set requests and limits (see the README's Sizing)" .Values.resources | toYaml | nindent 12 }}`,
			"{{- dict | toYaml | nindent 12 }}", "resources: no memory limit"},
		{"memory limit below the sizing", "values.yaml", "  limits:\n    memory: 512Mi\n", "  limits:\n    memory: 256Mi\n",
			"memory limit 256Mi is below"},
		{"Service selects nothing", "templates/service.yaml", "    {{- include \"oncehook.selectorLabels\" . | nindent 4 }}\n  ports:",
			"    app: oncehook\n  ports:", "Service: its selector"},
		{"Service selects the migration too", "templates/_helpers.tpl", "app.kubernetes.io/component: server\n{{- end -}}", "{{- end -}}",
			"Service: its selector also matches the migration Job's pod"},
		{"ServiceMonitor always on", "templates/servicemonitor.yaml", "{{- if .Values.serviceMonitor.enabled }}", "{{- if true }}",
			"a ServiceMonitor although serviceMonitor.enabled is false"},
		{"admin on loopback", "templates/deployment.yaml", `value: {{ printf ":%d" (int .Values.containerPorts.admin) | quote }}`, `value: "127.0.0.1:9090"`,
			`ADMIN_ADDR "127.0.0.1:9090"`},
		{"grace period too short", "templates/deployment.yaml", "{{ add .Values.preStopSleepSeconds .Values.shutdownTimeoutSeconds 10 }}", "{{ .Values.shutdownTimeoutSeconds }}",
			"terminationGracePeriodSeconds 30"},
		{"destination variables misnamed", "templates/_env.tpl", `{{- $prefix := printf "DESTINATION_%s_" ($d.name | upper | replace "-" "_") -}}
{{- if and $d.url $d.urlFrom -}}`, `{{- $prefix := printf "DESTINATION_%s_" $d.name -}}
{{- if and $d.url $d.urlFrom -}}`, "destination crm-eu has no DESTINATION_CRM_EU_URL"},
		{"ServiceMonitor on the webhook port", "templates/servicemonitor.yaml", "    - port: admin", "    - port: http",
			"ServiceMonitor: scrapes /metrics on port http"},
		{"an undocumented variable", "templates/deployment.yaml", "            - name: SHUTDOWN_TIMEOUT\n", "            - name: DRAIN_TIMEOUT\n",
			"DRAIN_TIMEOUT, which no page of the docs documents"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := brokenCopy(t, c.file, c.old, c.new)
			want := expect{replicas: 2}
			if values[c.name] == full {
				want = expect{replicas: 3, serviceMonitor: true}
			}
			objs, err := render(dir, readValues(t, values[c.name]))
			var ps []string
			if err != nil {
				ps = []string{err.Error()}
			} else {
				ps = check(objs, want)
			}
			t.Logf("problems: %s", strings.Join(ps, "; "))
			if !slices.ContainsFunc(ps, func(p string) bool { return strings.Contains(p, c.want) }) {
				t.Errorf("want a problem containing %q, got:\n%s", c.want, strings.Join(ps, "\n"))
			}
		})
	}
}

// render does what `helm template` does, offline (its install action
// without a cluster brings in far more code to build): the chart with these
// values (nil: its own), for kubeVersion, the schema checked, NOTES.txt
// rendered and set aside, the hooks split from the other manifests, and
// both returned.
func render(dir string, vals map[string]any) ([]object, error) {
	chrt, err := loader.Load(dir)
	if err != nil {
		return nil, err
	}
	kv, err := common.ParseKubeVersion(kubeVersion)
	if err != nil {
		return nil, err
	}
	caps := common.DefaultCapabilities.Copy()
	caps.KubeVersion = *kv
	if c := chrt.Metadata.KubeVersion; c != "" && !chartutil.IsCompatibleRange(c, kv.String()) {
		return nil, fmt.Errorf("chart requires kubeVersion %s, not %s", c, kv)
	}
	if vals == nil {
		vals = map[string]any{}
	}
	opts := common.ReleaseOptions{Name: "oncehook", Namespace: "payments", Revision: 1, IsInstall: true}
	top, err := commonutil.ToRenderValuesWithSchemaValidation(chrt, vals, opts, caps, false)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(chrt, top)
	if err != nil {
		return nil, err
	}
	for name := range files {
		if strings.HasSuffix(name, "/NOTES.txt") {
			delete(files, name)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, caps.APIVersions, releaseutil.InstallOrder)
	if err != nil {
		return nil, err
	}
	var docs []string
	for _, m := range manifests {
		docs = append(docs, m.Content)
	}
	for _, h := range hooks {
		docs = append(docs, h.Manifest)
	}
	return parseManifests(strings.Join(docs, "\n---\n"))
}

// readValues reads a values file of this directory; "" is no values.
func readValues(t *testing.T, file string) map[string]any {
	t.Helper()
	vals := map[string]any{}
	if file == "" {
		return vals
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &vals); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return vals
}

func mustKubeVersion(t *testing.T) *common.KubeVersion {
	t.Helper()
	kv, err := common.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func env(v map[string]any) map[string]any { return v["env"].(map[string]any) }

func dest(v map[string]any, i int) map[string]any {
	return v["destinations"].([]any)[i].(map[string]any)
}

// brokenCopy copies the chart into a temporary directory and replaces old,
// which must be in file once, with new there.
func brokenCopy(t *testing.T, file, old, new string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), chartDir)
	if err := os.CopyFS(dir, os.DirFS(chartDir)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, filepath.FromSlash(file))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(b), old) != 1 {
		t.Fatalf("%s: %q is not in it exactly once", file, old)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}
