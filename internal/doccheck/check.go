package doccheck

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// ConfigReference is the page that documents every configuration variable.
const ConfigReference = "docs/configuration.md"

// Check returns every problem in the documentation of the repository at
// root: a variable cmd/oncehook reads that docs/configuration.md does not
// document, one it documents that cmd/oncehook does not read, one
// `oncehook config` prints that the scan found no read of, and a broken
// relative link in README.md, CHANGELOG.md or docs/*.md.
func Check(root string) ([]string, error) {
	read, err := ReadVars(filepath.Join(root, "cmd", "oncehook"))
	if err != nil {
		return nil, err
	}
	ref, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(ConfigReference)))
	if err != nil {
		return nil, err
	}
	documented := DocumentedVars(string(ref))
	// Guards against a scan that silently stopped matching.
	if len(read) < 40 || !read["DATABASE_URL"] || !read["DESTINATIONS"] || !read[DestinationPattern+"URL"] {
		return nil, fmt.Errorf("found only %d variables in cmd/oncehook (DATABASE_URL, DESTINATIONS and %sURL among them?): is the scan still right?",
			len(read), DestinationPattern)
	}
	printed, err := PrintedVars(filepath.Join(root, "cmd", "oncehook"))
	if err != nil {
		return nil, err
	}
	var ps []string
	for _, v := range slices.Sorted(maps.Keys(printed)) {
		if !read[v] {
			ps = append(ps, fmt.Sprintf("cmd/oncehook: `oncehook config` prints %s, but the scan found no read of it: is the scan still right?", v))
		}
	}
	for _, v := range slices.Sorted(maps.Keys(read)) {
		if !IsDocumented(documented, v) {
			ps = append(ps, fmt.Sprintf("%s: cmd/oncehook reads %s, which it does not document", ConfigReference, v))
		}
	}
	for _, v := range slices.Sorted(maps.Keys(documented)) {
		if !read[v] && v != DestinationPattern+"*" {
			ps = append(ps, fmt.Sprintf("%s: documents %s, which cmd/oncehook does not read", ConfigReference, v))
		}
	}
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		return nil, err
	}
	files := []string{"README.md", "CHANGELOG.md"}
	for _, p := range pages {
		rel, _ := filepath.Rel(root, p)
		files = append(files, filepath.ToSlash(rel))
	}
	return append(ps, Links(root, files)...), nil
}
