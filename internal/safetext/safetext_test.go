package safetext_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/oncehook/oncehook/internal/safetext"
)

func TestClean(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		max      int
		want     string
	}{
		{"plain", "sink answered 500", 100, "sink answered 500"},
		{"latin-1 reason phrase", "500 Erreur interne du serveur \xe9", 100, "500 Erreur interne du serveur \uFFFD"},
		{"NUL", "a\x00b", 100, "a\uFFFDb"},
		{"cut inside a 3-byte character", "ab€€€", 9, "ab€…"},
		{"cut inside a 4-byte character", "x😀😀😀", 10, "x😀…"},
		{"exactly at the limit", "abcdefgh", 8, "abcdefgh"},
		{"a run of invalid bytes", strings.Repeat("\xff", 50), 20, "\uFFFD"},
		{"long text cut", strings.Repeat("é", 20), 11, "éééé…"},
	} {
		got := safetext.Clean(tc.in, tc.max)
		if got != tc.want {
			t.Errorf("%s: Clean(%q, %d) = %q, want %q", tc.name, tc.in, tc.max, got, tc.want)
		}
		if !utf8.ValidString(got) || strings.IndexByte(got, 0) >= 0 || len(got) > max(tc.max, 8) {
			t.Errorf("%s: %q is not safe (len %d)", tc.name, got, len(got))
		}
	}
}

func FuzzClean(f *testing.F) {
	f.Add("Erreur \xe9", 10)
	f.Add("€€€", 7)
	f.Fuzz(func(t *testing.T, s string, n int) {
		n = n % 4096
		got := safetext.Clean(s, n)
		if !utf8.ValidString(got) || strings.IndexByte(got, 0) >= 0 || len(got) > max(n, 8) {
			t.Fatalf("Clean(%q, %d) = %q: not safe", s, n, got)
		}
		if len(s) <= max(n, 8) && utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 && got != s {
			t.Fatalf("Clean changed safe text %q to %q", s, got)
		}
	})
}

func TestPrintable(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		keepNL   bool
		want     string
	}{
		{"plain", "500 Internal Server Error", false, "500 Internal Server Error"},
		{"unicode kept", "Erreur interne €😀 é", false, "Erreur interne €😀 é"},
		{"retitle and clear", "500 \x1b]0;pwned\x07\x1b[2J\x1b[H", false, `500 \x1b]0;pwned\a\x1b[2J\x1b[H`},
		{"newline and tab", "a\nb\tc\rd", false, `a\nb\tc\rd`},
		{"newline kept", "a\nb\tc", true, "a\nb\\tc"},
		{"DEL and C1 CSI", "a\x7fb\u009b2J", false, `a\x7fb\u009b2J`},
		{"invalid byte", "a\xffb\xe9", false, `a\xffb\xe9`},
		{"NUL", "a\x00b", false, `a\x00b`},
		{"bidi override", "evt_\u202egnp.exe", false, `evt_\u202egnp.exe`},
		{"line separator", "a\u2028b", true, `a\u2028b`},
		{"backslash left", `a\x1b`, false, `a\x1b`},
	} {
		if got := safetext.Printable(tc.in, tc.keepNL); got != tc.want {
			t.Errorf("%s: Printable(%q, %v) = %q, want %q", tc.name, tc.in, tc.keepNL, got, tc.want)
		}
	}
}

func FuzzPrintable(f *testing.F) {
	f.Add("500 \x1b]0;x\x07", false)
	f.Add("a\xffb\u009b\u202e\n", true)
	f.Fuzz(func(t *testing.T, s string, keepNL bool) {
		got := safetext.Printable(s, keepNL)
		if !utf8.ValidString(got) {
			t.Fatalf("Printable(%q) = %q: not valid UTF-8", s, got)
		}
		for _, r := range got {
			if r < 0x20 && !(keepNL && r == '\n') || r >= 0x7f && r < 0xa0 || r == 0x202e || r == 0x2028 {
				t.Fatalf("Printable(%q) = %q keeps %U", s, got, r)
			}
		}
	})
}
