// Package buildinfo tells which build of oncehook is running: its
// version, the commit it was built from, and the Go that built it.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// version and commit are set at link time, as `make build` does: go build
// -ldflags "-X github.com/oncehook/oncehook/internal/buildinfo.version=v1.2.3
// -X github.com/oncehook/oncehook/internal/buildinfo.commit=0123456789ab".
var version, commit string

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

// Commit is the revision set at link time; else the VCS revision the
// build recorded (12 characters), with "-dirty" when the tree had
// changes; "unknown" when neither (go run, go test, -buildvcs=false, or a
// build outside a checkout).
func Commit() string {
	if commit != "" {
		return commit
	}
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
