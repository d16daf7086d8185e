// Package safetext makes text from outside (a sink's answer, an error
// string, an API response) safe to store in a Postgres text column: valid
// UTF-8, no NUL, and at most a given number of bytes, cut on a character
// boundary; and Printable makes such text safe to print on a terminal.
package safetext

import (
	"strings"
	"unicode/utf8"
)

// ellipsis marks text that was cut.
const ellipsis = "…"

// Clean returns s as valid UTF-8 of at most maxBytes bytes: each invalid
// byte sequence and each NUL becomes U+FFFD, and text longer than maxBytes
// is cut on a character boundary and ends in "…". maxBytes below 8 is
// taken as 8.
func Clean(s string, maxBytes int) string {
	maxBytes = max(maxBytes, 8)
	if !needsCleaning(s, maxBytes) {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	if len(s) <= maxBytes {
		return s
	}
	cut := maxBytes - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

func needsCleaning(s string, maxBytes int) bool {
	return len(s) > maxBytes || strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s)
}
