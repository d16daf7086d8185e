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
