package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// BuildInfo is what oncehook_build_info labels: the running build and the
// schema version it is built for.
type BuildInfo struct {
	Version string // buildinfo.Version()
	Commit  string // buildinfo.Commit()
	Go      string // buildinfo.GoVersion()
	Schema  int    // migrations.Latest(): the schema this binary migrates to and runs on
}

// SetBuildInfo registers oncehook_build_info, always 1, labelled with b:
// `count by (version, schema) (oncehook_build_info)` shows which build
// and which schema each instance runs, as a rolling upgrade goes. Call it
// once.
func (m *Metrics) SetBuildInfo(b BuildInfo) {
	if m == nil {
		return
	}
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "oncehook_build_info",
		Help: "Always 1; the labels name the running build (version, commit, go) and the schema version it runs on.",
	}, []string{"version", "commit", "go", "schema"})
	m.Registry.MustRegister(info)
	info.WithLabelValues(b.Version, b.Commit, b.Go, strconv.Itoa(b.Schema)).Set(1)
}
