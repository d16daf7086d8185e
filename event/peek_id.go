package event

import "bytes"

var idKey = []byte(`"id"`)

// PeekID returns the event id when the body's first member is a plain
// "id" string, as in every event Stripe sends, without reading the rest:
// enough to answer a copy of an event this instance just stored. It
// returns false for anything else (an id with escapes or odd bytes, a
// first member that is not "id"), and Parse then reads the whole body as
// usual. An id it returns is the one Parse would read, if Parse accepts
// the body (FuzzParseEvent checks it); it does not check the rest. The
// id points into b.
func PeekID(b []byte) ([]byte, bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	i = skipWS(b, i+1)
	if !bytes.HasPrefix(b[i:], idKey) {
		return nil, false
	}
	i = skipWS(b, i+len(idKey))
	if i >= len(b) || b[i] != ':' {
		return nil, false
	}
	i = skipWS(b, i+1)
	if i >= len(b) || b[i] != '"' {
		return nil, false
	}
	i++
	end := bytes.IndexByte(b[i:], '"')
	if end < 1 || end > maxIDLen {
		return nil, false
	}
	id := b[i : i+end]
	for _, c := range id {
		// No backslash, so the quote found is the string's end; the rest
		// as Parse requires of an id.
		if c < 0x21 || c > 0x7e || c == '\\' {
			return nil, false
		}
	}
	return id, true
}
