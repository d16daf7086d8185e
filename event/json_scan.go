package event

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// skipWS returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipWS(b []byte, i int) int {
	for ; i < len(b); i++ {
		switch b[i] {
		case ' ', '\n', '\r', '\t':
		default:
			return i
		}
	}
	return i
}

// Codes scanString returns.
const (
	strOK = iota
	strEOF
	strControl
	strEscape
)

// plain reports the bytes that may appear as-is inside a JSON string and
// need no attention: everything but '"', '\\' and control characters.
// Bytes >= 0x80 are plain: like encoding/json.Valid, the scanner does not
// check UTF-8 in strings it does not capture.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// scanString scans a string whose opening quote is at i-1. It returns the
// index just past the closing quote and whether the string has escapes, or,
// when code is not strOK, the offset of the problem.
func scanString(b []byte, i int) (end int, esc bool, code int) {
	n := len(b)
	for {
		// Skip plain bytes eight at a time: m flags the bytes that are
		// '"', '\\' or < 0x20. Its lowest set bit is exact (borrows only
		// run upwards from a flagged byte), which is all that is used.
		for i+8 <= n {
			x := binary.LittleEndian.Uint64(b[i:])
			q := x ^ (lsb * '"')
			s := x ^ (lsb * '\\')
			m := ((q - lsb) &^ q) | ((s - lsb) &^ s) | ((x - lsb*0x20) &^ x)
			if m &= msb; m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		for i < n && plain[b[i]] {
			i++
		}
		if i >= n {
			return n, esc, strEOF
		}
		switch b[i] {
		case '"':
			return i + 1, esc, strOK
		case '\\':
			esc = true
			if i+1 >= n {
				return n, esc, strEOF
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for k := i + 2; k < i+6; k++ {
					if k >= n {
						return n, esc, strEOF
					}
					if !isHex(b[k]) {
						return i, esc, strEscape
					}
				}
				i += 6
			default:
				return i, esc, strEscape
			}
		default:
			return i, esc, strControl
		}
	}
}

func isHex(c byte) bool {
	return c-'0' <= 9 || (c|0x20)-'a' <= 5
}

// scanNumber scans the number starting at i. It returns the index just past
// it, or the offset of the first byte that breaks the grammar.
func scanNumber(b []byte, i int) (int, bool) {
	n := len(b)
	if b[i] == '-' {
		i++
		if i >= n {
			return i, false
		}
	}
	switch c := b[i]; {
	case c == '0':
		i++
	case c-'1' <= 8:
		i++
		for i < n && b[i]-'0' <= 9 {
			i++
		}
	default:
		return i, false
	}
	if i < n && b[i] == '.' {
		i++
		if i >= n || b[i]-'0' > 9 {
			return i, false
		}
		for i < n && b[i]-'0' <= 9 {
			i++
		}
	}
	if i < n && b[i]|0x20 == 'e' {
		i++
		if i < n && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= n || b[i]-'0' > 9 {
			return i, false
		}
		for i < n && b[i]-'0' <= 9 {
			i++
		}
	}
	return i, true
}

// matchLiteral checks for lit at i; on a mismatch it returns the offset of
// the first wrong byte.
func matchLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit), true
	}
	for k := 0; k < len(lit); k++ {
		if i+k >= len(b) || b[i+k] != lit[k] {
			return i + k, false
		}
	}
	return i + len(lit), true // unreachable
}

// syntaxError describes the unexpected byte at offset i (or the end of input).
func syntaxError(b []byte, i int) error {
	if i >= len(b) {
		return errEOF
	}
	return evNewErr("body is not valid JSON: unexpected " + quoteByte(b[i]) + " at offset " + strconv.Itoa(i))
}

func stringError(b []byte, i, code int) error {
	switch code {
	case strEOF:
		return errEOF
	case strControl:
		return evNewErr("body is not valid JSON: control character " + quoteByte(b[i]) + " in string at offset " + strconv.Itoa(i))
	default:
		return evNewErr("body is not valid JSON: invalid escape sequence at offset " + strconv.Itoa(i))
	}
}

// quoteByte renders c for an error message: 'x' for ASCII, byte 0xff otherwise.
func quoteByte(c byte) string {
	if c < utf8.RuneSelf {
		return strconv.QuoteRuneToASCII(rune(c))
	}
	const hexDigits = "0123456789abcdef"
	return "byte 0x" + string([]byte{hexDigits[c>>4], hexDigits[c&0xf]})
}

// appendUnquoted appends the decoded contents of a JSON string (without the
// quotes; its escapes already checked by scanString) to dst. It reports
// false if the string has an unpaired UTF-16 surrogate escape, which
// encoding/json would turn into U+FFFD.
func appendUnquoted(dst, raw []byte) ([]byte, bool) {
	for len(raw) > 0 {
		j := bytes.IndexByte(raw, '\\')
		if j < 0 {
			return append(dst, raw...), true
		}
		dst = append(dst, raw[:j]...)
		raw = raw[j:]
		switch c := raw[1]; c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(raw[2:6])
			raw = raw[6:]
			if utf16.IsSurrogate(r) {
				if r >= 0xdc00 || len(raw) < 6 || raw[0] != '\\' || raw[1] != 'u' {
					return dst, false
				}
				r2 := hex4(raw[2:6])
				if r2 < 0xdc00 || r2 > 0xdfff {
					return dst, false
				}
				r = utf16.DecodeRune(r, r2)
				raw = raw[6:]
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, c)
		}
		raw = raw[2:]
	}
	return dst, true
}

// hex4 decodes four hex digits already checked by scanString.
func hex4(p []byte) rune {
	var r rune
	for _, c := range p[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c >= 'a':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}
