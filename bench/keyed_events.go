package bench

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// KeyOf returns the object (0..keys-1) that keyed event n is about.
func KeyOf(n uint64, keys int) uint64 { return n % uint64(keys) }

// keyedEvent returns event n of a keyed generator: object KeyOf(n) takes
// the snapshot variant KeyOf(n) modulo the variants, with its object id
// replaced by one of the key's own (same prefix and length, so "pi_" stays
// a payment intent), and created Created + n/Keys seconds.
func (g *Generator) keyedEvent(n uint64) Event {
	k := KeyOf(n, g.cfg.Keys)
	t := &g.normal[k%uint64(len(g.normal))]
	id := EventID(g.cfg.Run, n)
	created := strconv.FormatInt(g.cfg.Created.Unix()+int64(n/uint64(g.cfg.Keys)), 10)
	body := make([]byte, 0, len(t.head)+len(id)+len(t.mid)+len(created)+len(t.tail))
	body = append(body, t.head...)
	body = append(body, id...)
	body = append(body, t.mid...)
	body = append(body, created...)
	body = append(body, t.tail...)
	if t.objectID != "" {
		body = bytes.ReplaceAll(body, []byte(`"`+t.objectID+`"`), []byte(`"`+keyObjectID(t.objectID, k)+`"`))
	}
	return Event{N: n, ID: id, Type: t.typ, Body: body}
}

// keyObjectID is object k's id: the template's prefix (up to its last '_')
// and "key" with k, zero-padded to the template id's length.
func keyObjectID(templateID string, k uint64) string {
	prefix := templateID[:strings.LastIndexByte(templateID, '_')+1]
	suffix := fmt.Sprintf("key%d", k)
	if pad := len(templateID) - len(prefix) - len(suffix); pad > 0 {
		suffix = "key" + strings.Repeat("0", pad) + strconv.FormatUint(k, 10)
	}
	return prefix + suffix
}
