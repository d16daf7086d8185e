package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/oncehook/oncehook/admin"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/store"
)

// queryTimeout bounds one page's reads.
const queryTimeout = 10 * time.Second

// maxPayloadShown bounds the payload shown on an event's page.
const maxPayloadShown = 256 << 10

// listData is an events or dead-letters page.
type listData struct {
	listForm
	Statuses     []string
	Destinations []string
	Events       []admin.PageEvent
	Next         template.URL // the next page's address
	First        template.URL // this filter's first page
	Partial      bool
	Budget       int
	Error        string
	Notice       string
	Selectable   bool
	Backlogs     []admin.Backlog
	// ErrorsOf, when set, adds a column with each event's last error at
	// this destination (the dead letters' page).
	ErrorsOf string
}

func (c *Console) events(w http.ResponseWriter, r *http.Request, s session) {
	form, err := parseList(r.URL.Query())
	d := listData{
		listForm: form, Budget: store.PageScanBudget,
		Statuses: []string{"", string(store.StatusPending), string(store.StatusDelivered), string(store.StatusDead), string(store.StatusUnrouted)},
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	served, serr := c.admin.Served(ctx, c.cfg.Destinations)
	if serr != nil {
		c.failErr(w, r, s, "read the destinations", serr)
		return
	}
	d.Destinations = served
	if f := form.Filter.Destination; f != "" && !slices.Contains(d.Destinations, f) {
		d.Destinations = append(slices.Clone(d.Destinations), f)
	}
	if err != nil {
		d.Error = err.Error()
		c.render(w, r, s, http.StatusBadRequest, "events", "Events", d)
		return
	}
	if form.ID != "" {
		// An id opens its page, which says so when there is none.
		http.Redirect(w, r, "/console/events/"+url.PathEscape(form.ID), http.StatusSeeOther)
		return
	}
	c.fillList(ctx, &d, "/console/events", form.values())
	if d.Error != "" && d.Events == nil {
		c.render(w, r, s, http.StatusInternalServerError, "events", "Events", d)
		return
	}
	c.render(w, r, s, http.StatusOK, "events", "Events", d)
}

// fillList reads d's page; path is the list's own address, and values
// its filter as a query.
func (c *Console) fillList(ctx context.Context, d *listData, path string, values url.Values) {
	d.First = template.URL(path + "?" + values.Encode())
	page, err := c.admin.List(ctx, d.Filter)
	if err != nil {
		c.cfg.Log.Error("console: listing events", "error", err)
		d.Error = "Could not read the events from Postgres; the log has the details."
		return
	}
	d.Events, d.Partial = page.Events, page.Partial
	if page.Next != nil {
		values.Set("after", cursorValue(*page.Next))
		// Built from url.Values.Encode: every value is query-escaped.
		d.Next = template.URL(path + "?" + values.Encode())
	}
}

// eventData is an event's page.
type eventData struct {
	Event     admin.Event
	Payload   string
	Size      int
	Shown     int
	Truncated bool
	Notice    string
}

func (c *Console) event(w http.ResponseWriter, r *http.Request, s session) {
	id := r.PathValue("id")
	if len(id) > maxIDBytes || !utf8.ValidString(id) {
		c.fail(w, r, s, http.StatusBadRequest, "That is not an event id.")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	ev, err := c.admin.Show(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		c.fail(w, r, s, http.StatusNotFound, fmt.Sprintf("No event has the id %q.", id))
		return
	}
	if err != nil {
		c.failErr(w, r, s, "read the event", err)
		return
	}
	d := eventData{Event: ev, Size: len(ev.Payload)}
	d.Payload, d.Shown = prettyPayload(ev.Payload)
	d.Truncated = d.Shown < d.Size
	d.Notice = replayedNotice(r.URL.Query())
	c.render(w, r, s, http.StatusOK, "event", "Event", d)
}

// prettyPayload indents a JSON payload for reading, within
// maxPayloadShown; it returns the text and how many payload bytes it
// shows. Invalid UTF-8 is shown replaced, never raw.
func prettyPayload(p []byte) (string, int) {
	shown := p
	if len(shown) > maxPayloadShown {
		shown = shown[:maxPayloadShown]
	} else {
		var buf bytes.Buffer
		if json.Indent(&buf, p, "", "  ") == nil {
			return string(bytes.ToValidUTF8(buf.Bytes(), []byte("\uFFFD"))), len(p)
		}
	}
	return string(bytes.ToValidUTF8(shown, []byte("\uFFFD"))), len(shown)
}

// replayedNotice says what a replay did, from the redirect's query; it
// shows nothing that is not a count and a destination name.
func replayedNotice(q url.Values) string {
	n, err := strconv.Atoi(q.Get("replayed"))
	dest := q.Get("destination")
	if err != nil || n < 0 || route.ValidName(dest) != nil {
		return ""
	}
	return fmt.Sprintf("Replayed %d to %s: it will be delivered again shortly.", n, dest)
}
