package main

import (
	"bytes"
	"unicode/utf8"

	"github.com/oncehook/oncehook/internal/safetext"
)

// term is text from outside (a sink's answer stored as a last error, an
// event's id or type, a destination or instance name from the record,
// an error) made safe for one line of terminal output: control
// characters and the like escaped (safetext.Printable), so that a sink
// cannot retitle, clear or rewrite the operator's terminal.
func term(s string) string { return safetext.Printable(s, false) }

// termLines is term keeping newlines, for text of several lines: a
// payload, an error that joins several.
func termLines(s string) string { return safetext.Printable(s, true) }

// jsonForTerm escapes, in JSON that encoding/json wrote, what it leaves
// raw and a terminal may act on: DEL, the C1 controls and the characters
// that reorder text, each as \u00XX or \uXXXX. They occur only inside
// strings (JSON has no other place for them), where the escape means the
// same character: the JSON decodes as before.
func jsonForTerm(b []byte) []byte {
	if safetext.Printable(string(b), true) == string(b) {
		return b
	}
	var out bytes.Buffer
	out.Grow(len(b) + 16)
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r != '\n' && r != '\t' && r != '\r' && safetext.Printable(string(b[i:i+size]), true) != string(b[i:i+size]) {
			if r == utf8.RuneError && size == 1 {
				r = utf8.RuneError // invalid UTF-8 (encoding/json writes none): U+FFFD
			}
			out.WriteString(`\u`)
			const hex = "0123456789abcdef"
			out.Write([]byte{hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf]})
		} else {
			out.Write(b[i : i+size])
		}
		i += size
	}
	return out.Bytes()
}
