package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestVersionPrefersTheLinkTimeValue(t *testing.T) {
	if v := Version(); v == "" {
		t.Fatal("Version is empty")
	}
	old := version
	t.Cleanup(func() { version = old })
	version = "v9.8.7"
	if v := Version(); v != "v9.8.7" {
		t.Fatalf("Version = %q, want the link-time v9.8.7", v)
	}
}

func TestCommitAndGoVersion(t *testing.T) {
	if c := Commit(); c == "" || len(strings.TrimSuffix(c, "-dirty")) > 12 {
		t.Fatalf("Commit = %q", c)
	}
	if g := GoVersion(); !strings.HasPrefix(runtime.Version(), "go"+g) {
		t.Fatalf("GoVersion = %q, runtime %q", g, runtime.Version())
	}
}
