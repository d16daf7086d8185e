package event

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// KeyPath is the path to a value in an event body, such as
// data.object.id: the object members to follow from the top, by name. A
// destination with an order key delivers the events that share the value
// at its path one at a time, in Stripe created order.
type KeyPath struct {
	names []string
}

// Bounds of a KeyPath and of the keys it reads.
const (
	// MaxKeyPathNames bounds the members of a path.
	MaxKeyPathNames = 8
	// MaxKeyPathNameLen bounds one member name.
	MaxKeyPathNameLen = 64
	// MaxOrderKeyLen bounds a stored key in bytes: a longer value (or one
	// Postgres text cannot hold) is stored as "sha256:" and its hex digest.
	MaxOrderKeyLen = 200
)

// ParseKeyPath reads a path of member names separated by dots, each made
// of letters, digits, '_' and '-': data.object.id.
func ParseKeyPath(s string) (KeyPath, error) {
	if s == "" {
		return KeyPath{}, errors.New("an order key path is empty")
	}
	names := strings.Split(s, ".")
	if len(names) > MaxKeyPathNames {
		return KeyPath{}, fmt.Errorf("order key path %.40q has %d names; at most %d", s, len(names), MaxKeyPathNames)
	}
	for _, n := range names {
		if n == "" || len(n) > MaxKeyPathNameLen || strings.IndexFunc(n, func(r rune) bool {
			return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-')
		}) >= 0 {
			return KeyPath{}, fmt.Errorf("order key path %.80q: want member names of letters, digits, '_' and '-' (at most %d each) separated by dots, such as data.object.id", s, MaxKeyPathNameLen)
		}
	}
	return KeyPath{names: names}, nil
}

// IsZero reports whether p is no path: the destination is unordered.
func (p KeyPath) IsZero() bool { return len(p.names) == 0 }

// String is the path as configured, "" for none.
func (p KeyPath) String() string { return strings.Join(p.names, ".") }

// Lookup returns the key of an event body: the string or number at p, ""
// when p is zero, the path is missing, or its value is another kind (or
// an empty string). A string is unescaped; a number is its text as sent.
// It reads body once, without allocating for a plain key, and never
// fails: a body it cannot follow has no key.
func (p KeyPath) Lookup(body []byte) string {
	if p.IsZero() {
		return ""
	}
	i := skipWS(body, 0)
	for _, name := range p.names {
		var ok bool
		if i, ok = member(body, i, name); !ok {
			return ""
		}
	}
	if i >= len(body) {
		return ""
	}
	switch c := body[i]; {
	case c == '"':
		end, esc, code := scanString(body, i+1)
		if code != strOK {
			return ""
		}
		raw := body[i+1 : end-1]
		if !esc {
			return safeKey(raw)
		}
		dec, ok := appendUnquoted(nil, raw)
		if !ok {
			return ""
		}
		return safeKey(dec)
	case c == '-' || c-'0' <= 9:
		end, ok := scanNumber(body, i)
		if !ok {
			return ""
		}
		return string(body[i:end])
	}
	return ""
}

// safeKey is k as a key Postgres text can hold, within MaxOrderKeyLen.
func safeKey(k []byte) string {
	if len(k) <= MaxOrderKeyLen && utf8.Valid(k) && !strings.ContainsRune(string(k), 0) {
		return string(k)
	}
	sum := sha256.Sum256(k)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// member finds the member name of the object at i and returns the index
// of its value; false when the value at i is not an object or has no such
// member. The first of repeated names wins.
func member(b []byte, i int, name string) (int, bool) {
	if i >= len(b) || b[i] != '{' {
		return i, false
	}
	i++
	for {
		i = skipWS(b, i)
		if i >= len(b) || b[i] != '"' {
			return i, false // '}' (not found) or not JSON
		}
		end, esc, code := scanString(b, i+1)
		if code != strOK {
			return i, false
		}
		raw := b[i+1 : end-1]
		i = skipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			return i, false
		}
		i = skipWS(b, i+1)
		if nameIs(raw, esc, name) {
			return i, true
		}
		var ok bool
		if i, ok = skipValue(b, i); !ok {
			return i, false
		}
		i = skipWS(b, i)
		if i >= len(b) || b[i] != ',' {
			return i, false
		}
		i++
	}
}

// nameIs compares a member name as sent (raw, with escapes when esc) with
// name.
func nameIs(raw []byte, esc bool, name string) bool {
	if !esc {
		return string(raw) == name
	}
	if len(raw) > 6*MaxKeyPathNameLen {
		return false
	}
	var buf [4 * MaxKeyPathNameLen]byte
	dec, ok := appendUnquoted(buf[:0], raw)
	return ok && string(dec) == name
}

// skipValue returns the index just past the value at i. It is lenient
// about the grammar (the body was checked when it was received) but exact
// about strings, and keeps no stack: nesting costs nothing.
func skipValue(b []byte, i int) (int, bool) {
	depth := 0
	for i < len(b) {
		c := b[i]
		switch c {
		case '"':
			end, _, code := scanString(b, i+1)
			if code != strOK {
				return i, false
			}
			i = end
		case '{', '[':
			depth++
			i++
		case '}', ']':
			if depth == 0 {
				return i, true // a scalar ended at its container's end
			}
			depth--
			i++
		case ',':
			if depth == 0 {
				return i, true
			}
			i++
		default:
			i++
		}
		if depth == 0 && (c == '"' || c == '}' || c == ']') {
			return i, true
		}
	}
	return i, false
}
