package event

import (
	"bytes"
	"errors"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"
)

// ErrInvalid is wrapped by every error Parse returns: the body is not a
// Stripe event oncehook can accept. errors.Is(err, ErrInvalid) reports such
// errors; their Error() text is a short message fit for a 400 response body.
var ErrInvalid = errors.New("invalid event")

// ParseError is the error type returned by Parse. Msg is a short,
// self-contained description of the problem, such as "event has no id".
type ParseError struct {
	Msg string
}

// Error returns e.Msg.
func (e *ParseError) Error() string { return e.Msg }

// Unwrap returns ErrInvalid, so errors.Is(err, ErrInvalid) holds.
func (e *ParseError) Unwrap() error { return ErrInvalid }

const (
	// maxDepth is the deepest nesting of objects and arrays Parse
	// accepts; the event object itself is level 1.
	maxDepth = 64
	// maxIDLen and maxTypeLen bound the id and type, in bytes.
	maxIDLen   = 255
	maxTypeLen = 255

	// maxCreated is 9999-12-31T23:59:59Z, the last second RFC 3339 can write.
	maxCreated = 253402300799
	// maxObjectQuote bounds how much of an unsupported object value is
	// echoed back in the error message.
	maxObjectQuote = 64
)

func evNewErr(msg string) *ParseError { return &ParseError{Msg: msg} }

// The fixed errors are allocated once, so most rejections cost no
// allocation either.
var (
	errEmpty         = evNewErr("body is empty")
	errEOF           = evNewErr("body is not valid JSON: unexpected end of input")
	errTooDeep       = evNewErr("JSON nesting deeper than 64 levels")
	errNotObject     = evNewErr("event must be a JSON object")
	errNoID          = evNewErr("event has no id")
	errIDNotString   = evNewErr("event id must be a string")
	errIDEmpty       = evNewErr("event id is empty")
	errIDTooLong     = evNewErr("event id is longer than 255 bytes")
	errIDChars       = evNewErr("event id must be printable ASCII without spaces, quotes or backslashes")
	errIDSurrogate   = evNewErr("event id contains an unpaired surrogate escape")
	errObjNotString  = evNewErr("event object must be a string")
	errNoType        = evNewErr("event has no type")
	errTypeNotString = evNewErr("event type must be a string")
	errTypeEmpty     = evNewErr("event type is empty")
	errTypeTooLong   = evNewErr("event type is longer than 255 bytes")
	errTypeUTF8      = evNewErr("event type is not valid UTF-8")
	errTypeControl   = evNewErr("event type contains a control character")
	errTypeSurrogate = evNewErr("event type contains an unpaired surrogate escape")
	errCreated       = evNewErr("created must be unix seconds or an RFC 3339 time")
	errCreatedRange  = evNewErr("created is out of range")
	errLivemode      = evNewErr("livemode must be true or false")
)

// Top-level keys Parse captures.
const (
	fieldID = iota
	fieldObject
	fieldType
	fieldCreated
	fieldLivemode
	fieldAccount
	fieldAPIVersion
	fieldContext
	numFields
)

var fieldNames = [numFields]string{"id", "object", "type", "created", "livemode", "account", "api_version", "context"}

// Per-field errors for the optional string fields (account, api_version,
// context), indexed by field.
var (
	errNotString [numFields]*ParseError
	errUTF8      [numFields]*ParseError
	errNUL       [numFields]*ParseError
	errSurrogate [numFields]*ParseError
)

func init() {
	for _, f := range []int{fieldAccount, fieldAPIVersion, fieldContext} {
		name := fieldNames[f]
		errNotString[f] = evNewErr(name + " must be a string")
		errUTF8[f] = evNewErr(name + " is not valid UTF-8")
		errNUL[f] = evNewErr(name + " contains a NUL character")
		errSurrogate[f] = evNewErr(name + " contains an unpaired surrogate escape")
	}
}

// span locates a captured top-level value: b[start:end] is the raw value
// (with the quotes, for a string); esc reports a backslash in a string.
type span struct {
	start, end int
	esc        bool
	set        bool
}

// kind returns the first byte of the value: '"', 't', 'f', 'n', '{', '[',
// or '-' / a digit for a number.
func (s *span) kind(b []byte) byte { return b[s.start] }

// Parse reads the top-level fields of the Stripe event in body without
// decoding the rest: a single pass over the bytes checks that the whole body
// is valid JSON (at most 64 levels deep) and picks out id, object,
// type, created, livemode, account, api_version and, for thin events,
// context. Payload is body itself, not a copy.
//
// Every error wraps ErrInvalid and is a *ParseError whose message can
// be shown to the sender as is.
func Parse(body []byte) (Event, error) {
	b := body
	n := len(b)
	var (
		sp       [numFields]span
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
	i = skipWS(b, 0)
	if i >= n {
		return Event{}, errEmpty
	}
	top = b[i]

value:
	// A value starts at i, possibly after whitespace.
	if i < n && b[i] <= ' ' {
		i = skipWS(b, i)
	}
	if i >= n {
		return Event{}, errEOF
	}
	if depth == 1 {
		valStart = i
	}
	switch c := b[i]; c {
	case '{':
		if depth == maxDepth {
			return Event{}, errTooDeep
		}
		objBits |= 1 << depth
		depth++
		i++
		if i < n && b[i] <= ' ' {
			i = skipWS(b, i)
		}
		if i < n && b[i] == '}' {
			i++
			depth--
			goto after
		}
		goto key
	case '[':
		if depth == maxDepth {
			return Event{}, errTooDeep
		}
		objBits &^= 1 << depth
		depth++
		i++
		if i < n && b[i] <= ' ' {
			i = skipWS(b, i)
		}
		if i < n && b[i] == ']' {
			i++
			depth--
			goto after
		}
		goto value
	case '"':
		i, esc, code = scanString(b, i+1)
		if code != strOK {
			return Event{}, stringError(b, i, code)
		}
	case 't':
		if i, ok = matchLiteral(b, i, "true"); !ok {
			return Event{}, syntaxError(b, i)
		}
	case 'f':
		if i, ok = matchLiteral(b, i, "false"); !ok {
			return Event{}, syntaxError(b, i)
		}
	case 'n':
		if i, ok = matchLiteral(b, i, "null"); !ok {
			return Event{}, syntaxError(b, i)
		}
	default:
		if c != '-' && c-'0' > 9 {
			return Event{}, syntaxError(b, i)
		}
		if i, ok = scanNumber(b, i); !ok {
			return Event{}, syntaxError(b, i)
		}
	}

after:
	// A value ended just before i; depth is the container it sits in.
	if depth <= 1 {
		if depth == 0 {
			goto end
		}
		if field >= 0 {
			sp[field] = span{start: valStart, end: i, esc: esc, set: true}
			field = -1
		}
	}
	if i < n && b[i] <= ' ' {
		i = skipWS(b, i)
	}
	if i >= n {
		return Event{}, errEOF
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
			return Event{}, syntaxError(b, i)
		}
		i++
		depth--
		goto after
	case ']':
		if objBits&(1<<(depth-1)) != 0 {
			return Event{}, syntaxError(b, i)
		}
		i++
		depth--
		goto after
	default:
		return Event{}, syntaxError(b, i)
	}

key:
	// An object member starts at i, possibly after whitespace.
	if i < n && b[i] <= ' ' {
		i = skipWS(b, i)
	}
	if i >= n {
		return Event{}, errEOF
	}
	if b[i] != '"' {
		return Event{}, syntaxError(b, i)
	}
	ks = i + 1
	i, esc, code = scanString(b, ks)
	if code != strOK {
		return Event{}, stringError(b, i, code)
	}
	if depth == 1 {
		field = lookupKey(b[ks:i-1], esc)
		if field >= 0 && sp[field].set && dup < 0 {
			dup = field
		}
	}
	if i < n && b[i] <= ' ' {
		i = skipWS(b, i)
	}
	if i >= n {
		return Event{}, errEOF
	}
	if b[i] != ':' {
		return Event{}, syntaxError(b, i)
	}
	i++
	goto value

end:
	if i = skipWS(b, i); i < n {
		return Event{}, evNewErr("body is not valid JSON: unexpected " + quoteByte(b[i]) +
			" after the end of the event at offset " + strconv.Itoa(i))
	}
	if top != '{' {
		return Event{}, errNotObject
	}
	if dup >= 0 {
		return Event{}, evNewErr("duplicate key " + strconv.Quote(fieldNames[dup]))
	}
	return capture(body, &sp)
}

// lookupKey returns the captured field a top-level key names, or -1. Keys
// with escapes are decoded first, as encoding/json would.
func lookupKey(k []byte, esc bool) int {
	if esc {
		// Every captured key is ASCII of at most 11 bytes, and an escape
		// never decodes to more bytes than it is written with.
		if len(k) > 6*len("api_version") {
			return -1
		}
		var kb [6 * len("api_version")]byte
		d, ok := appendUnquoted(kb[:0], k)
		if !ok {
			return -1
		}
		k = d
	}
	switch string(k) {
	case "id":
		return fieldID
	case "object":
		return fieldObject
	case "type":
		return fieldType
	case "created":
		return fieldCreated
	case "livemode":
		return fieldLivemode
	case "account":
		return fieldAccount
	case "api_version":
		return fieldAPIVersion
	case "context":
		return fieldContext
	}
	return -1
}

// capture interprets the top-level values the scan located. All captured
// strings are decoded into one buffer and converted to a single string, so
// a successful parse usually allocates just that string.
func capture(b []byte, sp *[numFields]span) (Event, error) {
	ev := Event{Payload: b}
	var stack [512]byte
	buf := stack[:0]
	var ok bool

	s := &sp[fieldID]
	if !s.set {
		return Event{}, errNoID
	}
	if s.kind(b) != '"' {
		return Event{}, errIDNotString
	}
	if buf, ok = appendString(buf, b, s); !ok {
		return Event{}, errIDSurrogate
	}
	idEnd := len(buf)
	switch {
	case idEnd == 0:
		return Event{}, errIDEmpty
	case idEnd > maxIDLen:
		return Event{}, errIDTooLong
	}
	for _, c := range buf {
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return Event{}, errIDChars
		}
	}

	if s = &sp[fieldObject]; s.set && s.kind(b) != 'n' {
		if s.kind(b) != '"' {
			return Event{}, errObjNotString
		}
		var obj []byte
		if buf, ok = appendString(buf, b, s); ok {
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
			if len(obj) > maxObjectQuote {
				cut := maxObjectQuote
				for cut > 0 && !utf8.RuneStart(obj[cut]) {
					cut--
				}
				return Event{}, evNewErr("unsupported object " + strconv.Quote(string(obj[:cut])) + "...")
			}
			return Event{}, evNewErr("unsupported object " + strconv.Quote(string(obj)))
		}
		buf = buf[:idEnd]
	}

	s = &sp[fieldType]
	if !s.set {
		return Event{}, errNoType
	}
	if s.kind(b) != '"' {
		return Event{}, errTypeNotString
	}
	if buf, ok = appendString(buf, b, s); !ok {
		return Event{}, errTypeSurrogate
	}
	typeEnd := len(buf)
	switch typ := buf[idEnd:]; {
	case len(typ) == 0:
		return Event{}, errTypeEmpty
	case len(typ) > maxTypeLen:
		return Event{}, errTypeTooLong
	default:
		if err := checkType(typ); err != nil {
			return Event{}, err
		}
	}

	if s = &sp[fieldCreated]; s.set {
		t, err := parseCreated(b, s)
		if err != nil {
			return Event{}, err
		}
		ev.Created = t
	}

	if s = &sp[fieldLivemode]; s.set {
		switch s.kind(b) {
		case 't':
			ev.Livemode = true
		case 'f', 'n':
		default:
			return Event{}, errLivemode
		}
	}

	// Thin events carry the account in context instead.
	accountField := fieldAccount
	if ev.Thin && (!sp[fieldAccount].set || sp[fieldAccount].kind(b) == 'n') &&
		sp[fieldContext].set && sp[fieldContext].kind(b) == '"' {
		accountField = fieldContext
	}
	var err error
	if buf, err = appendOptional(buf, b, sp, accountField); err != nil {
		return Event{}, err
	}
	accountEnd := len(buf)

	if buf, err = appendOptional(buf, b, sp, fieldAPIVersion); err != nil {
		return Event{}, err
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

// appendOptional appends the decoded string value of field f, if present
// and not null, and checks that it is valid UTF-8 without NUL.
func appendOptional(buf, b []byte, sp *[numFields]span, f int) ([]byte, error) {
	s := &sp[f]
	if !s.set || s.kind(b) == 'n' {
		return buf, nil
	}
	if s.kind(b) != '"' {
		return buf, errNotString[f]
	}
	mark := len(buf)
	buf, ok := appendString(buf, b, s)
	if !ok {
		return buf, errSurrogate[f]
	}
	v := buf[mark:]
	if bytes.IndexByte(v, 0) >= 0 {
		return buf, errNUL[f]
	}
	if !utf8.Valid(v) {
		return buf, errUTF8[f]
	}
	return buf, nil
}

// checkType checks that the decoded type is valid UTF-8 without control
// characters (C0, DEL and C1).
func checkType(p []byte) error {
	for i := 0; i < len(p); {
		c := p[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return errTypeControl
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(p[i:])
		if r == utf8.RuneError && size == 1 {
			return errTypeUTF8
		}
		if r <= 0x9f {
			return errTypeControl
		}
		i += size
	}
	return nil
}

// parseCreated reads created: integer unix seconds (snapshot events) or an
// RFC 3339 string (thin events), either form for either kind; null is the
// zero time. Times are returned in UTC.
func parseCreated(b []byte, s *span) (time.Time, error) {
	raw := b[s.start:s.end]
	switch raw[0] {
	case 'n':
		return time.Time{}, nil
	case '"':
		var str string
		if !s.esc {
			if len(raw) == 2 {
				return time.Time{}, errCreated
			}
			// Points into body, which outlives the call; time.Parse
			// keeps no reference to it in a successful result.
			str = unsafe.String(&raw[1], len(raw)-2)
		} else {
			dec, ok := appendUnquoted(nil, raw[1:len(raw)-1])
			if !ok {
				return time.Time{}, errCreated
			}
			str = string(dec)
		}
		t, err := time.Parse(time.RFC3339Nano, str)
		if err != nil {
			return time.Time{}, errCreated
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
				return time.Time{}, errCreated
			}
		}
		if len(digits) > len("253402300799") {
			return time.Time{}, errCreatedRange
		}
		var sec int64
		for _, c := range digits {
			sec = sec*10 + int64(c-'0')
		}
		if sec > maxCreated || (neg && sec != 0) {
			return time.Time{}, errCreatedRange
		}
		return time.Unix(sec, 0).UTC(), nil
	default:
		return time.Time{}, errCreated
	}
}

// appendString appends the decoded value of the string at s. It reports
// false for an unpaired surrogate escape.
func appendString(buf, b []byte, s *span) ([]byte, bool) {
	raw := b[s.start+1 : s.end-1]
	if !s.esc {
		return append(buf, raw...), true
	}
	return appendUnquoted(buf, raw)
}
