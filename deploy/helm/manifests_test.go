package helm

import (
	"fmt"
	"regexp"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// object is one rendered manifest: its kind, name and labels, and the typed
// object for the kinds the checks read.
type object struct {
	kind, name string
	labels     map[string]string
	// One of these, by kind; generic for a kind with no Go type here
	// (ServiceMonitor).
	deployment *appsv1.Deployment
	service    *corev1.Service
	job        *batchv1.Job
	generic    map[string]any
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// parseManifests splits a multi-document stream and decodes each document.
// Known kinds are decoded strictly: a field the Kubernetes API does not have
// (a typo, a wrong indent) is an error, as the API server would refuse it.
func parseManifests(stream string) ([]object, error) {
	var out []object
	for _, doc := range docSeparator.Split(stream, -1) {
		if isBlank(doc) {
			continue
		}
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name   string            `json:"name"`
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			return nil, fmt.Errorf("a rendered manifest is not YAML: %w\n%s", err, doc)
		}
		o := object{kind: head.Kind, name: head.Metadata.Name, labels: head.Metadata.Labels}
		var into any
		switch o.kind {
		case "Deployment":
			o.deployment = &appsv1.Deployment{}
			into = o.deployment
		case "Service":
			o.service = &corev1.Service{}
			into = o.service
		case "Job":
			o.job = &batchv1.Job{}
			into = o.job
		default:
			o.generic = map[string]any{}
			into = &o.generic
		}
		if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
			return nil, fmt.Errorf("%s %s: %w", o.kind, o.name, err)
		}
		out = append(out, o)
	}
	return out, nil
}

// isBlank tells a document of only comments and blank lines.
func isBlank(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}
