package doccheck

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDocumentedVars(t *testing.T) {
	ref := "# x\n\n| variable | default | meaning |\n| --- | --- | --- |\n" +
		"| `LISTEN_ADDR` | `:8080` | listener, not `IGNORED` |\n" +
		"| `TLS_CERT_FILE` / `TLS_KEY_FILE` | empty | TLS |\n" +
		"| `DESTINATIONS` | empty | names |\n" +
		"| `DESTINATION_<NAME>_URL` | required | sink |\n" +
		"| `DESTINATION_<name>_TYPES`, `_LIVEMODE` | `*` | filter |\n" +
		"| `pool_max_conns` | 8 | not a variable |\n" +
		"\n```\n| `IN_CODE` | x | y |\n```\n"
	got := slices.Sorted(maps.Keys(DocumentedVars(ref)))
	want := []string{"DESTINATIONS", "DESTINATION_<NAME>_LIVEMODE", "DESTINATION_<NAME>_TYPES", "DESTINATION_<NAME>_URL",
		"LISTEN_ADDR", "TLS_CERT_FILE", "TLS_KEY_FILE"}
	if !slices.Equal(got, want) {
		t.Errorf("DocumentedVars = %v, want %v", got, want)
	}
	wild := DocumentedVars("| `DESTINATION_<NAME>_*` | | every destination setting |\n")
	if !IsDocumented(wild, "DESTINATION_<NAME>_WORKERS") || IsDocumented(wild, "WORKERS") {
		t.Errorf("DESTINATION_<NAME>_* documents %v", wild)
	}
}

func TestSlug(t *testing.T) {
	for h, want := range map[string]string{
		"Running several instances":                 "running-several-instances",
		"Under attack (`hostile`)":                  "under-attack-hostile",
		"Larger attacks than the issue's":           "larger-attacks-than-the-issues",
		"Through the API: `oncehook stripe` create": "through-the-api-oncehook-stripe-create",
		"See [Security](security.md) first":         "see-security-first",
		"DESTINATION_<NAME>_URL":                    "destination_name_url",
	} {
		if got := Slug(h); got != want {
			t.Errorf("Slug(%q) = %q, want %q", h, got, want)
		}
	}
	a := Anchors("# Page\n## Limits\n```\n## Not a heading\n```\n## Limits\n<a id=\"kept\"></a>\n")
	got := slices.Sorted(maps.Keys(a))
	if want := []string{"kept", "limits", "limits-1", "page"}; !slices.Equal(got, want) {
		t.Errorf("Anchors = %v, want %v", got, want)
	}
}

// TestLinks checks what is and is not a broken link, on files of its own.
func TestLinks(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) {
		p = filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("docs/b.md", "# B\n## Part two\n")
	write("img/x.png", "")
	write("README.md", strings.Join([]string{
		"# A",
		"[ok](docs/b.md#part-two) ![ok](img/x.png) [ok](#a) [ok](https://example.com/#x) [ok](docs/)",
		"`[in code](nowhere.md)`",
		"```",
		"[in a block](nowhere.md)",
		"```",
		"[bad](docs/c.md)",
		"[bad](docs/b.md#part-three)",
		"[bad](#b)",
	}, "\n"))
	got := Links(root, []string{"README.md"})
	want := []string{
		"README.md:7: link docs/c.md: no file docs/c.md",
		"README.md:8: link docs/b.md#part-three: docs/b.md has no heading #part-three",
		"README.md:9: link #b: README.md has no heading #b",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Links =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
