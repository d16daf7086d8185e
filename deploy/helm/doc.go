// Package helm has no code. It holds the Helm chart of oncehook
// (deploy/helm/oncehook) and its test, which needs no cluster and no helm
// binary: through helm's Go module it lints the chart (strict), renders it
// as `helm template` does with the chart's defaults and with
// testdata/full.yaml (every option on), and checks the manifests: the kinds;
// the probes (/healthz, /readyz on the webhook port); ADMIN_ADDR on the
// pod's address; a grace period longer than the preStop sleep plus
// SHUTDOWN_TIMEOUT; resources at least the README's sizing; every secret
// from a secretKeyRef and none inline; the migration Job, a pre-install and
// pre-upgrade hook running `oncehook migrate`; the Service selecting the
// instances and not the Job; the ServiceMonitor only when enabled; every
// variable set documented. Values that inline a secret are refused, and a
// copy of the chart broken in one place per case must fail the checks.
package helm
