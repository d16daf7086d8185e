package event

// ValidID reports whether id is an event id as Parse takes one: 1 to 255
// bytes of printable ASCII without space, quote or backslash. An id from
// outside that fails it (one with a NUL, which Postgres refuses in text,
// or with control characters) must not reach a query or a terminal.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
