// Package buildinfo tells which build of oncehook is running: its
// version, the commit it was built from, and the Go that built it.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// version is set at link time: go build -ldflags "-X
// github.com/oncehook/oncehook/internal/buildinfo.version=v1.2.3".
var version string

// Version is the version set at link time; else the module's version as
// `go install …@version` records it; else "devel".
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// Commit is the VCS revision the binary was built from (12 characters),
// with "-dirty" when the tree had changes; "unknown" when the build did
// not record one (go run, go test, or a build outside a checkout).
func Commit() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	rev = rev[:min(12, len(rev))]
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// GoVersion is the Go release that built the binary.
func GoVersion() string { return strings.TrimPrefix(runtime.Version(), "go") }
