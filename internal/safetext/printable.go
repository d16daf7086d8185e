package safetext

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Printable returns s escaped for a terminal: every control character
// (C0 but for newline when keepNewlines, DEL, C1), each invalid UTF-8
// byte, and the characters that reorder or break lines (the bidi
// embeddings, overrides and isolates, U+2028 and U+2029) become a Go
// escape such as \x1b, \n or \u202e, so that text from outside (a sink's
// reason phrase, an event type, an API's error) cannot move the cursor,
// retitle or clear the operator's terminal, or disguise itself. A
// backslash is left as it is: the result is for reading, not for
// parsing back. Text with nothing to escape is returned as it is.
func Printable(s string, keepNewlines bool) string {
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if escaped(r, size, keepNewlines) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatUint(uint64(s[i])|0x100, 16)[1:])
		case escaped(r, size, keepNewlines):
			q := strconv.QuoteRuneToASCII(r) // '\x1b', '\n', '\u202e'
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// escaped reports whether Printable escapes the rune r of size bytes.
func escaped(r rune, size int, keepNewlines bool) bool {
	switch {
	case r == utf8.RuneError && size == 1:
		return true
	case r == '\n':
		return !keepNewlines
	case r < 0x20, r >= 0x7f && r < 0xa0:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c, r == 0x2028, r == 0x2029:
		return true
	}
	return false
}
