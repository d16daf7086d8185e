// Package docs holds the documentation pages and the test that keeps them
// true: every variable cmd/oncehook reads is in configuration.md and every
// one there is read, and every relative link of README.md, CHANGELOG.md and
// docs/*.md leads to a file and heading that exist.
package docs

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/oncehook/oncehook/internal/doccheck"
)

func TestDocs(t *testing.T) {
	ps, err := doccheck.Check("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		t.Error(p)
	}
}

// TestDocsCheckCanFail runs the check on a copy of the repository with one
// broken edit per case, and wants the problem named.
func TestDocsCheckCanFail(t *testing.T) {
	cases := []struct{ name, file, old, new, want string }{
		{"variable read, not documented", "cmd/oncehook/config.go", `e.get("ADMIN_TOKEN")`, `e.get("ADMIN_TOKEN") + e.get("ADMIN_TOKEN_FILE")`,
			"docs/configuration.md: cmd/oncehook reads ADMIN_TOKEN_FILE, which it does not document"},
		{"destination setting read, not documented", "cmd/oncehook/destinations.go", `d.Workers = e.integer(v("WORKERS")`, `_ = e.get(v("PRIORITY"))
	d.Workers = e.integer(v("WORKERS")`,
			"cmd/oncehook reads DESTINATION_<NAME>_PRIORITY, which it does not document"},
		{"variable read through os.Getenv, not documented", "cmd/oncehook/main.go", `os.Getenv("GOGC") == ""`, `os.Getenv("GOGC") == "" && os.Getenv("ONCEHOOK_GC") == ""`,
			"cmd/oncehook reads ONCEHOOK_GC, which it does not document"},
		{"variable renamed in the code", "cmd/oncehook/config.go", `e.duration("IDLE_TIMEOUT"`, `e.duration("KEEPALIVE_TIMEOUT"`,
			"docs/configuration.md: documents IDLE_TIMEOUT, which cmd/oncehook does not read"},
		{"documented, not read", "docs/configuration.md", "| `LISTEN_ADDR` |", "| `STRIPE_ACCOUNT` | empty | a connected account |\n| `LISTEN_ADDR` |",
			"docs/configuration.md: documents STRIPE_ACCOUNT, which cmd/oncehook does not read"},
		{"link to a missing file", "README.md", "\n## ", "\nSee [the FAQ](docs/faq.md).\n\n## ",
			"README.md:%d: link docs/faq.md: no file docs/faq.md"},
		{"link to a missing heading", "docs/operating.md", "\n## ", "\nSee [retries](destinations.md#no-such-heading).\n\n## ",
			"docs/operating.md:%d: link destinations.md#no-such-heading: docs/destinations.md has no heading #no-such-heading"},
		{"link to a missing heading of the same page", "CHANGELOG.md", "\n## ", "\nSee [below](#nowhere).\n\n## ",
			"CHANGELOG.md:%d: link #nowhere: CHANGELOG.md has no heading #nowhere"},
		{"link out of the repository", "docs/security.md", "\n## ", "\nSee [that](../../elsewhere.md).\n\n## ",
			"docs/security.md:%d: link ../../elsewhere.md leaves the repository"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := copyRepo(t)
			p := filepath.Join(root, filepath.FromSlash(c.file))
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			src := string(b)
			i := strings.Index(src, c.old)
			if i < 0 {
				t.Fatalf("%s: %q is not in it", c.file, c.old)
			}
			want := c.want
			if strings.Contains(want, "%d") { // the line of the first line the edit adds
				want = strings.Replace(want, "%d", strconv.Itoa(strings.Count(src[:i+1], "\n")+1), 1)
			}
			if err := os.WriteFile(p, []byte(src[:i]+c.new+src[i+len(c.old):]), 0o644); err != nil {
				t.Fatal(err)
			}
			ps, err := doccheck.Check(root)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(ps, func(p string) bool { return strings.Contains(p, want) }) {
				t.Errorf("want a problem containing %q, got:\n%s", want, strings.Join(ps, "\n"))
			}
		})
	}
}

// copyRepo returns a temporary repository the check can be run on and
// edited: copies of the pages it reads and of cmd/oncehook's source, and
// links to everything else.
func copyRepo(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	copied := map[string]bool{"README.md": true, "CHANGELOG.md": true, "docs": true, "cmd": true}
	entries, err := os.ReadDir("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !copied[e.Name()] {
			link(t, filepath.Join("..", e.Name()), filepath.Join(root, e.Name()))
		}
	}
	copyFile(t, "../README.md", filepath.Join(root, "README.md"))
	copyFile(t, "../CHANGELOG.md", filepath.Join(root, "CHANGELOG.md"))
	copyDir(t, ".", filepath.Join(root, "docs"), ".md", "")
	copyDir(t, "../cmd", filepath.Join(root, "cmd"), "", "oncehook")
	copyDir(t, "../cmd/oncehook", filepath.Join(root, "cmd", "oncehook"), ".go", "")
	return root
}

// copyDir makes dst with copies of src's files that end in ext (test
// files aside), and links to the rest but the directory except, which the
// caller copies next.
func copyDir(t *testing.T, src, dst, ext, except string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		s, d := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		switch {
		case e.Name() == except:
		case !e.IsDir() && ext != "" && strings.HasSuffix(e.Name(), ext) && !strings.HasSuffix(e.Name(), "_test.go"):
			copyFile(t, s, d)
		default:
			link(t, s, d)
		}
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func link(t *testing.T, src, dst string) {
	t.Helper()
	abs, err := filepath.Abs(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(abs, dst); err != nil {
		t.Fatal(err)
	}
}
