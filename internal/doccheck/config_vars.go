package doccheck

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// DestinationPattern starts the name under which a destination's variables
// are known and documented: DESTINATION_BILLING_URL is DESTINATION_<NAME>_URL.
const DestinationPattern = "DESTINATION_<NAME>_"

var (
	// e.str("LISTEN_ADDR", ...), e.duration(...): every method of
	// cmd/oncehook's env type takes the variable's name first.
	envCall = regexp.MustCompile(`\be\.\w+\("([A-Z][A-Z0-9_]*)"`)
	// os.Getenv("GOGC"), os.LookupEnv(...): read outside the env type.
	osCall = regexp.MustCompile(`\bos\.(?:Getenv|LookupEnv)\("([A-Z][A-Z0-9_]*)"\)`)
	// {"LISTEN_ADDR", c.ListenAddr}: the list `oncehook config` prints.
	printed = regexp.MustCompile(`\{"([A-Z][A-Z0-9_]*)",\s*[^"\s]`)
	// destinationVar(name, "URL"), and closures over it: v := func(field
	// string) string { return destinationVar(name, field) }, then v("URL").
	destVar = regexp.MustCompile(`\bdestinationVar\([^,()]+,\s*"([A-Z][A-Z0-9_]*)"\)`)
	closure = regexp.MustCompile(`\b(\w+)\s*:=\s*func\(\w+ string\) string \{\s*return destinationVar\(`)
)

// ReadVars returns the variables the command in dir (cmd/oncehook) reads,
// found in its non-test source: the names its env type is asked for and the
// ones read with os.Getenv or os.LookupEnv. A destination's variables are
// returned as DESTINATION_<NAME>_URL.
//
// The source is scanned rather than `oncehook config` asked at run time:
// the command is package main (nothing can import a list from it), its
// printed list is kept by hand beside the reads, shows SINK_URL or
// DESTINATIONS but never both, and leaves out what the runtime reads (GOGC,
// GOMEMLIMIT). The scan sees every command's reads; PrintedVars is checked
// against it, so a scan that stops matching is noticed.
func ReadVars(dir string) (map[string]bool, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, re := range []*regexp.Regexp{envCall, osCall} {
			for _, m := range re.FindAllSubmatch(b, -1) {
				out[string(m[1])] = true
			}
		}
		for _, m := range destVar.FindAllSubmatch(b, -1) {
			out[DestinationPattern+string(m[1])] = true
		}
		for _, c := range closure.FindAllSubmatch(b, -1) {
			field := regexp.MustCompile(`\b` + regexp.QuoteMeta(string(c[1])) + `\("([A-Z][A-Z0-9_]*)"\)`)
			for _, m := range field.FindAllSubmatch(b, -1) {
				out[DestinationPattern+string(m[1])] = true
			}
		}
	}
	return out, nil
}

// DocumentedVars returns the variables named in the first cell of the table
// rows of a configuration reference (Markdown). A placeholder in a name
// (DESTINATION_<NAME>_URL, DESTINATION_<name>_URL) is returned as <NAME>; a
// name that starts with _ after one with a placeholder shares its start
// (`DESTINATION_<NAME>_URL` / `_TYPES`); DESTINATION_<NAME>_* stands for
// every destination variable. Code blocks are skipped.
func DocumentedVars(markdown string) map[string]bool {
	code := regexp.MustCompile("`([A-Za-z0-9_<>*]+)`")
	placeholder := regexp.MustCompile(`<[A-Za-z_]+>`)
	valid := regexp.MustCompile(`^[A-Z][A-Z0-9_]*(?:<NAME>[A-Z0-9_]*)*\*?$`)
	out := map[string]bool{}
	for _, line := range strings.Split(withoutFences(markdown), "\n") {
		cells := strings.Split(line, "|")
		if !strings.HasPrefix(line, "|") || len(cells) < 3 {
			continue
		}
		stem := "" // up to the last placeholder of the previous name
		for _, m := range code.FindAllStringSubmatch(cells[1], -1) {
			n := placeholder.ReplaceAllString(m[1], "<NAME>")
			if strings.HasPrefix(n, "_") && stem != "" {
				n = stem + n
			}
			if !valid.MatchString(n) {
				continue
			}
			if i := strings.LastIndex(n, "<NAME>"); i >= 0 {
				stem = n[:i+len("<NAME>")]
			}
			out[n] = true
		}
	}
	return out
}

// IsDocumented reports whether variable v (DESTINATION_<NAME>_URL for a
// destination's) is in documented, directly or as DESTINATION_<NAME>_*.
func IsDocumented(documented map[string]bool, v string) bool {
	return documented[v] || strings.HasPrefix(v, DestinationPattern) && documented[DestinationPattern+"*"]
}

// PrintedVars returns the variables `oncehook config` prints, from the
// {"NAME", value} pairs of cmd/oncehook's non-test source (dir).
func PrintedVars(dir string) (map[string]bool, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, m := range printed.FindAllSubmatch(b, -1) {
			out[string(m[1])] = true
		}
	}
	return out, nil
}
