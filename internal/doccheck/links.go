package doccheck

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

var (
	// [text](target) and ![alt](target), with an optional "title".
	link = regexp.MustCompile(`\]\(([^()\s]+)(?:\s+"[^"]*")?\)`)
	// `code`, whose text is never a link.
	codeSpan = regexp.MustCompile("`[^`\n]*`")
	heading  = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
	htmlID   = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
	// [text](url) in a heading is its text.
	inlineLink = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
)

// Links returns a problem for every broken relative link in the Markdown
// files (paths from root): a target file or directory that does not exist,
// or a #fragment that is no heading (nor <a id>) of the target page. Links
// with a scheme (https:, mailto:) and links in code are not checked.
func Links(root string, files []string) []string {
	var ps []string
	anchors := map[string]map[string]bool{} // path from root -> its anchors
	anchorsOf := func(p string) (map[string]bool, error) {
		if a, ok := anchors[p]; ok {
			return a, nil
		}
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(p)))
		if err != nil {
			return nil, err
		}
		anchors[p] = Anchors(string(b))
		return anchors[p], nil
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			ps = append(ps, err.Error())
			continue
		}
		for i, line := range strings.Split(withoutFences(string(b)), "\n") {
			for _, m := range link.FindAllStringSubmatch(codeSpan.ReplaceAllString(line, ""), -1) {
				if p := checkLink(root, f, m[1], anchorsOf); p != "" {
					ps = append(ps, fmt.Sprintf("%s:%d: %s", f, i+1, p))
				}
			}
		}
	}
	return ps
}

// checkLink returns what is wrong with target, a link in page from.
func checkLink(root, from, target string, anchorsOf func(string) (map[string]bool, error)) string {
	if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
		return ""
	}
	path, frag, _ := strings.Cut(target, "#")
	dest := from
	if path != "" {
		dest = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(from), filepath.FromSlash(path))))
		if strings.HasPrefix(dest, "../") || filepath.IsAbs(path) {
			return fmt.Sprintf("link %s leaves the repository", target)
		}
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(dest))); err != nil {
			return fmt.Sprintf("link %s: no file %s", target, dest)
		}
	}
	if frag == "" || !strings.HasSuffix(dest, ".md") {
		return ""
	}
	a, err := anchorsOf(dest)
	if err != nil {
		return fmt.Sprintf("link %s: %v", target, err)
	}
	if !a[frag] {
		return fmt.Sprintf("link %s: %s has no heading #%s", target, dest, frag)
	}
	return ""
}

// Anchors returns the fragments a Markdown page can be linked to: its
// headings, as GitHub spells them, and <a id="..."> tags.
func Anchors(markdown string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, line := range strings.Split(withoutFences(markdown), "\n") {
		for _, m := range htmlID.FindAllStringSubmatch(line, -1) {
			out[m[1]] = true
		}
		m := heading.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		s := Slug(m[1])
		if n := seen[s]; n > 0 {
			out[s+"-"+strconv.Itoa(n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	return out
}

// Slug is GitHub's anchor for a heading: lower case, links as their text,
// letters, digits, - and _ kept, spaces as -, the rest dropped.
func Slug(h string) string {
	h = inlineLink.ReplaceAllString(h, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// withoutFences blanks the lines of fenced code blocks, keeping the line
// count, so that their # lines are no headings and their text no links.
func withoutFences(markdown string) string {
	lines := strings.Split(markdown, "\n")
	in := false
	for i, l := range lines {
		fence := strings.HasPrefix(strings.TrimSpace(l), "```")
		if in || fence {
			lines[i] = ""
		}
		if fence {
			in = !in
		}
	}
	return strings.Join(lines, "\n")
}
