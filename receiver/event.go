package receiver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/oncehook/oncehook/dedup"
)

// ErrInvalidEvent is wrapped by every error ParseEvent returns: the body is
// not a Stripe event oncehook can accept. errors.Is(err, ErrInvalidEvent)
// reports such errors; their Error() text is a short message fit for a 400
// response body.
var ErrInvalidEvent = errors.New("invalid event")

// EventError is the error type returned by ParseEvent. Msg is a short,
// self-contained description of the problem, such as "event has no id".
type EventError struct {
	Msg string
}

// Error returns e.Msg.
func (e *EventError) Error() string { return e.Msg }

// Unwrap returns ErrInvalidEvent, so errors.Is(err, ErrInvalidEvent) holds.
func (e *EventError) Unwrap() error { return ErrInvalidEvent }

const (
	// evMaxDepth is the deepest nesting of objects and arrays ParseEvent
	// accepts; the event object itself is level 1.
	evMaxDepth = 64
	// evMaxIDLen and evMaxTypeLen bound the id and type, in bytes.
	evMaxIDLen   = 255
	evMaxTypeLen = 255

	// evMaxCreated is 9999-12-31T23:59:59Z, the last second RFC 3339 can write.
	evMaxCreated = 253402300799
	// evMaxObjectQuote bounds how much of an unsupported object value is
	// echoed back in the error message.
	evMaxObjectQuote = 64
)

func evNewErr(msg string) *EventError { return &EventError{Msg: msg} }

// The fixed errors are allocated once, so the error paths that are hit by
// well-formed but unacceptable bodies cost no allocation either.
var (
	evErrEmpty         = evNewErr("body is empty")
	evErrEOF           = evNewErr("body is not valid JSON: unexpected end of input")
	evErrTooDeep       = evNewErr("JSON nesting deeper than 64 levels")
	evErrNotObject     = evNewErr("event must be a JSON object")
	evErrNoID          = evNewErr("event has no id")
	evErrIDNotString   = evNewErr("event id must be a string")
	evErrIDEmpty       = evNewErr("event id is empty")
	evErrIDTooLong     = evNewErr("event id is longer than 255 bytes")
	evErrIDChars       = evNewErr("event id must be printable ASCII without spaces, quotes or backslashes")
	evErrIDSurrogate   = evNewErr("event id contains an unpaired surrogate escape")
	evErrObjNotString  = evNewErr("event object must be a string")
	evErrNoType        = evNewErr("event has no type")
	evErrTypeNotString = evNewErr("event type must be a string")
	evErrTypeEmpty     = evNewErr("event type is empty")
	evErrTypeTooLong   = evNewErr("event type is longer than 255 bytes")
	evErrTypeUTF8      = evNewErr("event type is not valid UTF-8")
	evErrTypeControl   = evNewErr("event type contains a control character")
	evErrTypeSurrogate = evNewErr("event type contains an unpaired surrogate escape")
	evErrCreated       = evNewErr("created must be unix seconds or an RFC 3339 time")
	evErrCreatedRange  = evNewErr("created is out of range")
	evErrLivemode      = evNewErr("livemode must be true or false")
)

// Top-level keys ParseEvent captures.
const (
	evFID = iota
	evFObject
	evFType
	evFCreated
	evFLivemode
	evFAccount
	evFAPIVersion
	evFContext
	evNumFields
)

var evFieldNames = [evNumFields]string{"id", "object", "type", "created", "livemode", "account", "api_version", "context"}

// Per-field errors for the optional string fields (account, api_version,
// context), indexed by field.
var (
	evErrNotString [evNumFields]*EventError
	evErrUTF8      [evNumFields]*EventError
	evErrNUL       [evNumFields]*EventError
	evErrSurrogate [evNumFields]*EventError
)

func init() {
	for _, f := range []int{evFAccount, evFAPIVersion, evFContext} {
		name := evFieldNames[f]
		evErrNotString[f] = evNewErr(name + " must be a string")
		evErrUTF8[f] = evNewErr(name + " is not valid UTF-8")
		evErrNUL[f] = evNewErr(name + " contains a NUL character")
		evErrSurrogate[f] = evNewErr(name + " contains an unpaired surrogate escape")
	}
}

// evSpan locates a captured top-level value: b[start:end] is the raw value
// (with the quotes, for a string); esc reports a backslash in a string.
type evSpan struct {
	start, end int
	esc        bool
	set        bool
}

// kind returns the first byte of the value: '"', 't', 'f', 'n', '{', '[',
// or '-' / a digit for a number.
func (s *evSpan) kind(b []byte) byte { return b[s.start] }

// Codes evScanString returns.
const (
	evStrOK = iota
	evStrEOF
	evStrControl
	evStrEscape
)

// evPlain reports the bytes that may appear as-is inside a JSON string and
// need no attention: everything but '"', '\\' and control characters.
// Bytes >= 0x80 are plain: like encoding/json.Valid, the scanner does not
// check UTF-8 in strings it does not capture.
var evPlain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	evLsb = 0x0101010101010101
	evMsb = 0x8080808080808080
)

// ParseEvent reads the top-level fields of the Stripe event in body without
// decoding the rest: a single pass over the bytes checks that the whole body
// is valid JSON (at most 64 levels deep) and picks out id, object,
// type, created, livemode, account, api_version and, for thin events,
// context. Payload is body itself, not a copy.
//
// Every error wraps ErrInvalidEvent and is an *EventError whose message can
// be shown to the sender as is.
func ParseEvent(body []byte) (dedup.Event, error) {
	b := body
	n := len(b)
	var (
		sp       [evNumFields]evSpan
		i        int
		depth    int    // open objects and arrays
		objBits  uint64 // bit d-1 is set when the container at depth d is an object
		field    = -1   // captured key whose value is being scanned, or -1
		dup      = -1   // first captured key seen twice, or -1
		valStart int    // start of the current top-level member's value
		esc      bool   // the last string scanned had a backslash
		code     int
		ok       bool
		ks       int
		top      byte
	)
	i = evSkipWS(b, 0)
	if i >= n {
		return dedup.Event{}, evErrEmpty
	}
	top = b[i]

value:
	// A value starts at i, possibly after whitespace.
	if i < n && b[i] <= ' ' {
		i = evSkipWS(b, i)
	}
	if i >= n {
		return dedup.Event{}, evErrEOF
	}
	if depth == 1 {
		valStart = i
	}
	switch c := b[i]; c {
	case '{':
		if depth == evMaxDepth {
			return dedup.Event{}, evErrTooDeep
		}
		objBits |= 1 << depth
		depth++
		i++
		if i < n && b[i] <= ' ' {
			i = evSkipWS(b, i)
		}
		if i < n && b[i] == '}' {
			i++
			depth--
			goto after
		}
		goto key
	case '[':
		if depth == evMaxDepth {
			return dedup.Event{}, evErrTooDeep
		}
		objBits &^= 1 << depth
		depth++
		i++
		if i < n && b[i] <= ' ' {
			i = evSkipWS(b, i)
		}
		if i < n && b[i] == ']' {
			i++
			depth--
			goto after
		}
		goto value
	case '"':
		i, esc, code = evScanString(b, i+1)
		if code != evStrOK {
			return dedup.Event{}, evStringError(b, i, code)
		}
	case 't':
		if i, ok = evMatchLiteral(b, i, "true"); !ok {
			return dedup.Event{}, evSyntaxError(b, i)
		}
	case 'f':
		if i, ok = evMatchLiteral(b, i, "false"); !ok {
			return dedup.Event{}, evSyntaxError(b, i)
		}
	case 'n':
		if i, ok = evMatchLiteral(b, i, "null"); !ok {
			return dedup.Event{}, evSyntaxError(b, i)
		}
	default:
		if c != '-' && c-'0' > 9 {
			return dedup.Event{}, evSyntaxError(b, i)
		}
		if i, ok = evScanNumber(b, i); !ok {
			return dedup.Event{}, evSyntaxError(b, i)
		}
	}

after:
	// A value ended just before i; depth is the container it sits in.
	if depth <= 1 {
		if depth == 0 {
			goto end
		}
		if field >= 0 {
			sp[field] = evSpan{start: valStart, end: i, esc: esc, set: true}
			field = -1
		}
	}
	if i < n && b[i] <= ' ' {
		i = evSkipWS(b, i)
	}
	if i >= n {
		return dedup.Event{}, evErrEOF
	}
	switch b[i] {
	case ',':
		i++
		if objBits&(1<<(depth-1)) != 0 {
			goto key
		}
		goto value
	case '}':
		if objBits&(1<<(depth-1)) == 0 {
			return dedup.Event{}, evSyntaxError(b, i)
		}
		i++
		depth--
		goto after
	case ']':
		if objBits&(1<<(depth-1)) != 0 {
			return dedup.Event{}, evSyntaxError(b, i)
		}
		i++
		depth--
		goto after
	default:
		return dedup.Event{}, evSyntaxError(b, i)
	}

key:
	// An object member starts at i, possibly after whitespace.
	if i < n && b[i] <= ' ' {
		i = evSkipWS(b, i)
	}
	if i >= n {
		return dedup.Event{}, evErrEOF
	}
	if b[i] != '"' {
		return dedup.Event{}, evSyntaxError(b, i)
	}
	ks = i + 1
	i, esc, code = evScanString(b, ks)
	if code != evStrOK {
		return dedup.Event{}, evStringError(b, i, code)
	}
	if depth == 1 {
		field = evLookupKey(b[ks:i-1], esc)
		if field >= 0 && sp[field].set && dup < 0 {
			dup = field
		}
	}
	if i < n && b[i] <= ' ' {
		i = evSkipWS(b, i)
	}
	if i >= n {
		return dedup.Event{}, evErrEOF
	}
	if b[i] != ':' {
		return dedup.Event{}, evSyntaxError(b, i)
	}
	i++
	goto value

end:
	if i = evSkipWS(b, i); i < n {
		return dedup.Event{}, evNewErr("body is not valid JSON: unexpected " + evQuoteByte(b[i]) +
			" after the end of the event at offset " + strconv.Itoa(i))
	}
	if top != '{' {
		return dedup.Event{}, evErrNotObject
	}
	if dup >= 0 {
		return dedup.Event{}, evNewErr("duplicate key " + strconv.Quote(evFieldNames[dup]))
	}
	return evCapture(body, &sp)
}

// evCapture interprets the top-level values the scan located. All captured
// strings are decoded into one buffer and converted to a single string, so
// a successful parse allocates once.
func evCapture(b []byte, sp *[evNumFields]evSpan) (dedup.Event, error) {
	ev := dedup.Event{Payload: b}
	var stack [512]byte
	buf := stack[:0]
	var ok bool

	// id
	s := &sp[evFID]
	if !s.set {
		return dedup.Event{}, evErrNoID
	}
	if s.kind(b) != '"' {
		return dedup.Event{}, evErrIDNotString
	}
	if buf, ok = evAppendString(buf, b, s); !ok {
		return dedup.Event{}, evErrIDSurrogate
	}
	idEnd := len(buf)
	switch {
	case idEnd == 0:
		return dedup.Event{}, evErrIDEmpty
	case idEnd > evMaxIDLen:
		return dedup.Event{}, evErrIDTooLong
	}
	for _, c := range buf {
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return dedup.Event{}, evErrIDChars
		}
	}

	// object
	if s = &sp[evFObject]; s.set && s.kind(b) != 'n' {
		if s.kind(b) != '"' {
			return dedup.Event{}, evErrObjNotString
		}
		var obj []byte
		if buf, ok = evAppendString(buf, b, s); ok {
			obj = buf[idEnd:]
		}
		switch string(obj) {
		case "event":
		case "v2.core.event":
			ev.Thin = true
		default:
			if !ok {
				obj = b[s.start+1 : s.end-1]
			}
			if len(obj) > evMaxObjectQuote {
				cut := evMaxObjectQuote
				for cut > 0 && !utf8.RuneStart(obj[cut]) {
					cut--
				}
				return dedup.Event{}, evNewErr("unsupported object " + strconv.Quote(string(obj[:cut])) + "...")
			}
			return dedup.Event{}, evNewErr("unsupported object " + strconv.Quote(string(obj)))
		}
		buf = buf[:idEnd]
	}

	// type
	s = &sp[evFType]
	if !s.set {
		return dedup.Event{}, evErrNoType
	}
	if s.kind(b) != '"' {
		return dedup.Event{}, evErrTypeNotString
	}
	if buf, ok = evAppendString(buf, b, s); !ok {
		return dedup.Event{}, evErrTypeSurrogate
	}
	typeEnd := len(buf)
	switch typ := buf[idEnd:]; {
	case len(typ) == 0:
		return dedup.Event{}, evErrTypeEmpty
	case len(typ) > evMaxTypeLen:
		return dedup.Event{}, evErrTypeTooLong
	default:
		if err := evCheckType(typ); err != nil {
			return dedup.Event{}, err
		}
	}

	// created
	if s = &sp[evFCreated]; s.set {
		t, err := evParseCreated(b, s)
		if err != nil {
			return dedup.Event{}, err
		}
		ev.Created = t
	}

	// livemode
	if s = &sp[evFLivemode]; s.set {
		switch s.kind(b) {
		case 't':
			ev.Livemode = true
		case 'f', 'n':
		default:
			return dedup.Event{}, evErrLivemode
		}
	}

	// account; thin events carry it in context instead.
	accountField := evFAccount
	if ev.Thin && (!sp[evFAccount].set || sp[evFAccount].kind(b) == 'n') &&
		sp[evFContext].set && sp[evFContext].kind(b) == '"' {
		accountField = evFContext
	}
	var err error
	if buf, err = evAppendOptional(buf, b, sp, accountField); err != nil {
		return dedup.Event{}, err
	}
	accountEnd := len(buf)

	// api_version
	if buf, err = evAppendOptional(buf, b, sp, evFAPIVersion); err != nil {
		return dedup.Event{}, err
	}

	str := string(buf)
	ev.ID = str[:idEnd]
	ev.Type = str[idEnd:typeEnd]
	if accountEnd > typeEnd {
		ev.Account = str[typeEnd:accountEnd]
	}
	if len(str) > accountEnd {
		ev.APIVersion = str[accountEnd:]
	}
	return ev, nil
}

// evAppendOptional appends the decoded string value of field f, which may be
// missing or null, after checking that it is valid UTF-8 without NUL.
func evAppendOptional(buf, b []byte, sp *[evNumFields]evSpan, f int) ([]byte, error) {
	s := &sp[f]
	if !s.set || s.kind(b) == 'n' {
		return buf, nil
	}
	if s.kind(b) != '"' {
		return buf, evErrNotString[f]
	}
	mark := len(buf)
	buf, ok := evAppendString(buf, b, s)
	if !ok {
		return buf, evErrSurrogate[f]
	}
	v := buf[mark:]
	if bytes.IndexByte(v, 0) >= 0 {
		return buf, evErrNUL[f]
	}
	if !utf8.Valid(v) {
		return buf, evErrUTF8[f]
	}
	return buf, nil
}

// evCheckType reports whether the decoded type is valid UTF-8 without control
// characters (C0, DEL and C1).
func evCheckType(p []byte) error {
	for i := 0; i < len(p); {
		c := p[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return evErrTypeControl
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(p[i:])
		if r == utf8.RuneError && size == 1 {
			return evErrTypeUTF8
		}
		if r <= 0x9f {
			return evErrTypeControl
		}
		i += size
	}
	return nil
}

// evParseCreated reads created: integer unix seconds (snapshot events) or an
// RFC 3339 string (thin events), either form for either kind; null is the
// zero time. Times are returned in UTC.
func evParseCreated(b []byte, s *evSpan) (time.Time, error) {
	raw := b[s.start:s.end]
	switch raw[0] {
	case 'n':
		return time.Time{}, nil
	case '"':
		var str string
		if !s.esc {
			if len(raw) == 2 {
				return time.Time{}, evErrCreated
			}
			// Points into body, which outlives the call; time.Parse
			// keeps no reference to it in a successful result.
			str = unsafe.String(&raw[1], len(raw)-2)
		} else {
			dec, ok := evAppendUnquoted(nil, raw[1:len(raw)-1])
			if !ok {
				return time.Time{}, evErrCreated
			}
			str = string(dec)
		}
		t, err := time.Parse(time.RFC3339Nano, str)
		if err != nil {
			return time.Time{}, evErrCreated
		}
		return t.UTC(), nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		neg := raw[0] == '-'
		digits := raw
		if neg {
			digits = raw[1:]
		}
		for _, c := range digits {
			if c-'0' > 9 { // fraction or exponent
				return time.Time{}, evErrCreated
			}
		}
		if len(digits) > len("253402300799") {
			return time.Time{}, evErrCreatedRange
		}
		var sec int64
		for _, c := range digits {
			sec = sec*10 + int64(c-'0')
		}
		if sec > evMaxCreated || (neg && sec != 0) {
			return time.Time{}, evErrCreatedRange
		}
		return time.Unix(sec, 0).UTC(), nil
	default:
		return time.Time{}, evErrCreated
	}
}

// evAppendString appends the decoded value of the string at s. It reports
// false for an unpaired surrogate escape.
func evAppendString(buf, b []byte, s *evSpan) ([]byte, bool) {
	raw := b[s.start+1 : s.end-1]
	if !s.esc {
		return append(buf, raw...), true
	}
	return evAppendUnquoted(buf, raw)
}

// evAppendUnquoted appends the decoded contents of a JSON string (without the
// quotes; its escapes already checked by evScanString) to dst. It reports
// false if the string has an unpaired UTF-16 surrogate escape, which
// encoding/json would turn into U+FFFD.
func evAppendUnquoted(dst, raw []byte) ([]byte, bool) {
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
			r := evHex4(raw[2:6])
			raw = raw[6:]
			if utf16.IsSurrogate(r) {
				if r >= 0xdc00 || len(raw) < 6 || raw[0] != '\\' || raw[1] != 'u' {
					return dst, false
				}
				r2 := evHex4(raw[2:6])
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

// evHex4 decodes four hex digits already checked by evScanString.
func evHex4(p []byte) rune {
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

func evIsHex(c byte) bool {
	return c-'0' <= 9 || (c|0x20)-'a' <= 5
}

// evLookupKey returns the captured field a top-level key names, or -1. Keys
// with escapes are decoded first, as encoding/json would.
func evLookupKey(k []byte, esc bool) int {
	if esc {
		// Every captured key is ASCII of at most 11 bytes, and an escape
		// never decodes to more bytes than it is written with.
		if len(k) > 6*len("api_version") {
			return -1
		}
		var kb [6 * len("api_version")]byte
		d, ok := evAppendUnquoted(kb[:0], k)
		if !ok {
			return -1
		}
		k = d
	}
	switch string(k) {
	case "id":
		return evFID
	case "object":
		return evFObject
	case "type":
		return evFType
	case "created":
		return evFCreated
	case "livemode":
		return evFLivemode
	case "account":
		return evFAccount
	case "api_version":
		return evFAPIVersion
	case "context":
		return evFContext
	}
	return -1
}

// evSkipWS returns the index of the first byte at or after i that is not
// JSON whitespace.
func evSkipWS(b []byte, i int) int {
	for ; i < len(b); i++ {
		switch b[i] {
		case ' ', '\n', '\r', '\t':
		default:
			return i
		}
	}
	return i
}

// evScanString scans a string whose opening quote is at i-1. It returns the
// index just past the closing quote and whether the string has escapes, or,
// when code is not evStrOK, the offset of the problem.
func evScanString(b []byte, i int) (end int, esc bool, code int) {
	n := len(b)
	for {
		// Skip plain bytes eight at a time: m flags the bytes that are
		// '"', '\\' or < 0x20. Its lowest set bit is exact (borrows only
		// run upwards from a flagged byte), which is all that is used.
		for i+8 <= n {
			x := binary.LittleEndian.Uint64(b[i:])
			q := x ^ (evLsb * '"')
			s := x ^ (evLsb * '\\')
			m := ((q - evLsb) &^ q) | ((s - evLsb) &^ s) | ((x - evLsb*0x20) &^ x)
			if m &= evMsb; m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		for i < n && evPlain[b[i]] {
			i++
		}
		if i >= n {
			return n, esc, evStrEOF
		}
		switch b[i] {
		case '"':
			return i + 1, esc, evStrOK
		case '\\':
			esc = true
			if i+1 >= n {
				return n, esc, evStrEOF
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for k := i + 2; k < i+6; k++ {
					if k >= n {
						return n, esc, evStrEOF
					}
					if !evIsHex(b[k]) {
						return i, esc, evStrEscape
					}
				}
				i += 6
			default:
				return i, esc, evStrEscape
			}
		default:
			return i, esc, evStrControl
		}
	}
}

// evScanNumber scans the number starting at i. It returns the index just past
// it, or the offset of the first byte that breaks the grammar.
func evScanNumber(b []byte, i int) (int, bool) {
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

// evMatchLiteral checks for lit at i; on a mismatch it returns the offset of
// the first wrong byte.
func evMatchLiteral(b []byte, i int, lit string) (int, bool) {
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

// evSyntaxError describes the unexpected byte at offset i (or the end of input).
func evSyntaxError(b []byte, i int) error {
	if i >= len(b) {
		return evErrEOF
	}
	return evNewErr("body is not valid JSON: unexpected " + evQuoteByte(b[i]) + " at offset " + strconv.Itoa(i))
}

func evStringError(b []byte, i, code int) error {
	switch code {
	case evStrEOF:
		return evErrEOF
	case evStrControl:
		return evNewErr("body is not valid JSON: control character " + evQuoteByte(b[i]) + " in string at offset " + strconv.Itoa(i))
	default:
		return evNewErr("body is not valid JSON: invalid escape sequence at offset " + strconv.Itoa(i))
	}
}

// evQuoteByte renders c for an error message: 'x' for ASCII, 0xff otherwise.
func evQuoteByte(c byte) string {
	if c < utf8.RuneSelf {
		return strconv.QuoteRuneToASCII(rune(c))
	}
	const hexDigits = "0123456789abcdef"
	return "byte 0x" + string([]byte{hexDigits[c>>4], hexDigits[c&0xf]})
}
