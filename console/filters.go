package console

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/oncehook/oncehook/admin"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/store"
)

// maxIDBytes bounds an event id from a form or a URL.
const maxIDBytes = 255

// maxFieldBytes bounds a type prefix from a form or a URL.
const maxFieldBytes = 200

// timeLayout is a datetime-local input's value, in UTC.
const timeLayout = "2006-01-02T15:04:05"

// listForm is a list page's filter as the user typed it, and as parsed.
type listForm struct {
	Filter admin.ListParams
	// Type is the type field: a pattern as the command line and the
	// destinations take it (invoice.*), or, without a *, a prefix, which
	// is the pattern with a * appended (invoice. is invoice.*).
	Type  string
	Since string
	Until string
	ID    string
}

// typePattern is the pattern of a type field.
func typePattern(field string) string {
	if strings.Contains(field, "*") {
		return field
	}
	return field + "*"
}

// parseList reads a list page's filter from q; the error names the field.
func parseList(q url.Values) (listForm, error) {
	f := listForm{ID: strings.TrimSpace(q.Get("id"))}
	f.Filter.Status = store.Status(q.Get("status"))
	f.Filter.Destination = q.Get("destination")
	f.Type = strings.TrimSpace(q.Get("type"))
	switch f.Filter.Status {
	case "", store.StatusPending, store.StatusDelivered, store.StatusDead, store.StatusUnrouted:
	default:
		return f, fmt.Errorf("status %q is none of pending, delivered, dead, unrouted", f.Filter.Status)
	}
	if f.Filter.Destination != "" && route.ValidName(f.Filter.Destination) != nil {
		return f, fmt.Errorf("%q is not a destination name", truncate(f.Filter.Destination, 80))
	}
	if len(f.Type) > maxFieldBytes || !utf8.ValidString(f.Type) {
		return f, fmt.Errorf("the type must be valid text of at most %d bytes", maxFieldBytes)
	}
	if f.Type != "" {
		if err := route.ValidPattern(f.Type); err != nil {
			return f, fmt.Errorf("type: %w", err)
		}
		f.Filter.Types = []string{typePattern(f.Type)}
	}
	if len(f.ID) > maxIDBytes || !utf8.ValidString(f.ID) {
		return f, fmt.Errorf("an event id is valid text of at most %d bytes", maxIDBytes)
	}
	var err error
	if f.Filter.Since, f.Since, err = parseTime(q.Get("since")); err != nil {
		return f, fmt.Errorf("from: %w", err)
	}
	if f.Filter.Until, f.Until, err = parseTime(q.Get("until")); err != nil {
		return f, fmt.Errorf("before: %w", err)
	}
	if f.Filter.After, err = parseCursor(q.Get("after")); err != nil {
		return f, err
	}
	return f, nil
}

// parseTime reads a datetime-local value (UTC) or an RFC 3339 time; it
// returns the time and the value to show back in the input.
func parseTime(s string) (time.Time, string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, "", nil
	}
	for _, layout := range []string{timeLayout, "2006-01-02T15:04", time.RFC3339Nano} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, t.UTC().Format(timeLayout), nil
		}
	}
	return time.Time{}, "", fmt.Errorf("%q is not a time like 2026-11-29T20:00:00 (UTC)", truncate(s, 40))
}

// maxCursorMicros is the year 9999, the latest time Postgres and the
// pages take.
var maxCursorMicros = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

// cursorValue writes c for a URL: microseconds since the epoch, "_", id.
func cursorValue(c admin.Cursor) string {
	return strconv.FormatInt(c.At.UnixMicro(), 10) + "_" + c.ID
}

func parseCursor(s string) (admin.Cursor, error) {
	if s == "" {
		return admin.Cursor{}, nil
	}
	us, id, ok := strings.Cut(s, "_")
	n, err := strconv.ParseInt(us, 10, 64)
	if !ok || err != nil || n < 0 || n > maxCursorMicros || id == "" || len(id) > maxIDBytes || !utf8.ValidString(id) {
		return admin.Cursor{}, fmt.Errorf("the page position %q is malformed: start again from the newest page", truncate(s, 40))
	}
	return admin.Cursor{At: time.UnixMicro(n).UTC(), ID: id}, nil
}

// values writes f back as a query, without the page position.
func (f listForm) values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("status", string(f.Filter.Status))
	set("destination", f.Filter.Destination)
	set("type", f.Type)
	set("since", f.Since)
	set("until", f.Until)
	return v
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
