package redact

import (
	"cmp"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Mask replaces each secret.
const Mask = "xxxxx"

// URL returns raw with its credentials replaced by Mask, for logs and error
// messages. Input that is not a URL is never returned as it is: it becomes
// "<unparseable URL>", or "<unparseable redis URL>" when a scheme can be
// read. Without a scheme, only a bare word or path such as "stdout" or
// "/var/log/events.jsonl" is returned unchanged.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if scheme := schemeOf(raw); scheme != "" {
			return "<unparseable " + scheme + " URL>"
		}
		return "<unparseable URL>"
	}
	if u.Scheme == "" && strings.IndexFunc(raw, notPathRune) >= 0 {
		// Not a URL but perhaps "host=db password=...", which net/url
		// takes for a path.
		return "<unparseable URL>"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), Mask)
		} else if u.User.Username() != "" && !namesUser(u.Scheme) {
			u.User = url.User(Mask)
		}
	}
	if u.Opaque != "" {
		// scheme:user:password@host has no "//": everything before the
		// last @ may be a credential.
		if i := strings.LastIndexByte(u.Opaque, '@'); i >= 0 {
			u.Opaque = Mask + u.Opaque[i:]
		}
	}
	if u.RawQuery != "" {
		u.RawQuery = maskQuery(u.RawQuery)
	}
	if u.Fragment != "" {
		u.Fragment, u.RawFragment = Mask, ""
	}
	return u.String()
}

// namesUser reports a scheme whose user name is a name, not a credential:
// a Postgres role, which errors name too ("password authentication failed
// for user ..."), and which is needed to tell why a login fails.
func namesUser(scheme string) bool {
	scheme = strings.ToLower(scheme)
	return scheme == "postgres" || scheme == "postgresql"
}

// notPathRune reports whether r is not in a plain word or path like
// "stdout" or "/var/log/events.jsonl".
func notPathRune(r rune) bool {
	return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' ||
		r == '/' || r == '.' || r == '-' || r == '_' || r == '~')
}

// maskQuery replaces the value of every key=value pair; a part without "="
// may be a bare token and is replaced whole.
func maskQuery(q string) string {
	parts := strings.Split(q, "&")
	for i, p := range parts {
		key, value, hasValue := strings.Cut(p, "=")
		switch {
		case p == "" || hasValue && value == "":
		case hasValue:
			parts[i] = key + "=" + Mask
		default:
			parts[i] = Mask
		}
	}
	return strings.Join(parts, "&")
}

// schemeOf returns the scheme raw starts with (RFC 3986: a letter, then
// letters, digits, +, - or ., then ":"), or "".
func schemeOf(raw string) string {
	for i := 0; i < len(raw) && i <= 32; i++ {
		c := raw[i]
		switch {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':':
			return strings.ToLower(raw[:i])
		default:
			return ""
		}
	}
	return ""
}

// Error returns err with every spelling of each raw URL and of its secrets
// replaced (see the package comment). It unwraps to err, so errors.Is and
// errors.As still work; what they reach is the original error, whose own
// text is not redacted. With nothing to replace, Error returns err itself;
// a nil err gives nil.
func Error(err error, raws ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if red := String(msg, raws...); red != msg {
		return &redactedError{msg: red, err: err}
	}
	return err
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// String returns s with every spelling of each raw URL and of its secrets
// replaced, as Error does for an error's text.
func String(s string, raws ...string) string {
	var whole []replacement
	var secrets []string
	for _, raw := range raws {
		if raw == "" {
			continue
		}
		w, sec := spellings(raw)
		whole = append(whole, w...)
		secrets = append(secrets, sec...)
	}
	// Longest first, so that a spelling is not cut up by a shorter one
	// that it contains.
	slices.SortStableFunc(whole, func(a, b replacement) int { return cmp.Compare(len(b.old), len(a.old)) })
	for _, r := range whole {
		s = strings.ReplaceAll(s, r.old, r.new)
	}
	slices.SortFunc(secrets, func(a, b string) int { return cmp.Or(cmp.Compare(len(b), len(a)), strings.Compare(a, b)) })
	for _, sec := range slices.Compact(secrets) {
		s = replaceSecret(s, sec)
	}
	return s
}

type replacement struct{ old, new string }

// spellings returns the forms in which raw as a whole may appear in an
// error, each with its redacted form, and the secrets raw holds, each in
// every form in which it may appear.
func spellings(raw string) ([]replacement, []string) {
	red := URL(raw)
	forms := []string{raw}
	var secrets []string
	addSecret := func(encoded string, decode func(string) (string, error), encode ...func(string) string) {
		if encoded == "" {
			return
		}
		secrets = append(secrets, encoded)
		dec := encoded
		if d, err := decode(encoded); err == nil {
			dec = d
			secrets = append(secrets, d)
		}
		for _, enc := range encode {
			secrets = append(secrets, enc(dec))
		}
	}

	// From the text itself, so that an unparseable URL's secrets are found
	// too (net/url's rule: the authority ends at the first /, ? or #, and
	// the user information at its last @).
	rest := raw
	if i := strings.Index(rest, "://"); i >= 0 {
		rest = rest[i+3:]
	}
	authority := rest
	if i := strings.IndexAny(authority, "/?#"); i >= 0 {
		authority = authority[:i]
	}
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		user, password, hasPassword := strings.Cut(authority[:i], ":")
		if hasPassword {
			addSecret(password, url.PathUnescape, escapePassword, url.QueryEscape)
		} else if !namesUser(schemeOf(raw)) {
			addSecret(user, url.PathUnescape, escapeUser, url.QueryEscape)
		}
	}
	query, fragment, _ := strings.Cut(raw, "#")
	if _, q, ok := strings.Cut(query, "?"); ok {
		for p := range strings.SplitSeq(q, "&") {
			key, value, hasValue := strings.Cut(p, "=")
			if !hasValue {
				value = key
			}
			addSecret(value, url.QueryUnescape, url.QueryEscape, url.PathEscape)
		}
	}
	addSecret(fragment, url.PathUnescape, url.PathEscape)

	if u, err := url.Parse(raw); err == nil {
		forms = append(forms, u.String(), u.Redacted())
		if u.User != nil {
			if p, ok := u.User.Password(); ok {
				secrets = append(secrets, p)
				// net/http's *url.Error: "user:***@host".
				forms = append(forms, strings.Replace(u.String(), u.User.String()+"@", u.User.Username()+":***@", 1))
			}
		}
	}

	var out []replacement
	for _, f := range forms {
		out = append(out, replacement{f, red}, replacement{quoted(f), quoted(red)})
	}
	for _, s := range slices.Clone(secrets) {
		secrets = append(secrets, quoted(s))
	}
	return out, secrets
}

// quoted is s as %q prints it, without the quotes (url.Error quotes its URL).
func quoted(s string) string {
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

func escapePassword(s string) string {
	u := url.UserPassword("", s).String()
	return u[1:] // drop the ":"
}

func escapeUser(s string) string { return url.User(s).String() }

// shortSecret is the length under which a secret is replaced only where it
// stands alone.
const shortSecret = 4

func replaceSecret(s, secret string) string {
	if strings.Contains(Mask, secret) { // "" too
		return s
	}
	if len(secret) >= shortSecret {
		return strings.ReplaceAll(s, secret, Mask)
	}
	var b strings.Builder
	done := 0 // s[:done] is written
	for from := 0; ; {
		i := strings.Index(s[from:], secret)
		if i < 0 {
			break
		}
		i += from
		end := i + len(secret)
		if (i == 0 || !wordByte(s[i-1])) && (end == len(s) || !wordByte(s[end])) {
			b.WriteString(s[done:i])
			b.WriteString(Mask)
			done = end
		}
		from = i + 1
	}
	b.WriteString(s[done:])
	return b.String()
}

// wordByte reports whether c may be part of the same word or number as a
// short secret next to it: letters, digits and URL-unreserved marks.
func wordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == '%'
}
