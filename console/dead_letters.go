package console

import (
	"context"
	"fmt"
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

// maxErrorShown bounds, in bytes, a last error shown in the dead-letter
// list; its title holds the whole stored text (at most 1000 bytes).
const maxErrorShown = 300

// deliveryTo returns an event's delivery to dest, or nil.
func deliveryTo(rows []store.EventRow, dest string) *store.EventRow {
	for i := range rows {
		if rows[i].Destination == dest {
			return &rows[i]
		}
	}
	return nil
}

// maxSelection bounds the events one "replay selected" names.
const maxSelection = 1000

// replayTimeout bounds a replay of every matching dead letter; it goes on
// when the browser leaves, as the user confirmed it.
const replayTimeout = 10 * time.Minute

func (c *Console) deadLetters(w http.ResponseWriter, r *http.Request, s session) {
	q := r.URL.Query()
	q.Set("status", string(store.StatusDead))
	form, err := parseList(q)
	d := listData{listForm: form, Budget: store.PageScanBudget, Selectable: true}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	backlogs, _, berr := c.admin.Backlogs(ctx, c.cfg.Destinations)
	if berr != nil {
		c.failErr(w, r, s, "read the dead letters", berr)
		return
	}
	d.Backlogs = backlogs
	if err != nil {
		d.Error = err.Error()
		c.render(w, r, s, http.StatusBadRequest, "dead", "Dead letters", d)
		return
	}
	if d.Filter.Destination == "" {
		// The first destination with dead letters, else the first one.
		for _, b := range backlogs {
			if b.Dead > 0 {
				d.Filter.Destination = b.Destination
				break
			}
		}
		if d.Filter.Destination == "" && len(backlogs) > 0 {
			d.Filter.Destination = backlogs[0].Destination
		}
	}
	d.Notice = replayedNotice(r.URL.Query())
	d.ErrorsOf = d.Filter.Destination
	if d.Filter.Destination != "" {
		c.fillList(ctx, &d, "/console/dead", d.deadValues())
	}
	c.render(w, r, s, http.StatusOK, "dead", "Dead letters", d)
}

// deadValues is a dead-letter filter as a query (the status is implied).
func (f listForm) deadValues() url.Values {
	v := f.values()
	v.Del("status")
	return v
}

// replay puts the selected events' deliveries to one destination back to
// pending: one event from its page, or a selection of dead letters.
func (c *Console) replay(w http.ResponseWriter, r *http.Request, s session) {
	dest := r.PostFormValue("destination")
	ids := r.PostForm["id"]
	if err := c.checkDestination(r.Context(), dest); err != nil {
		c.fail(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	if len(ids) == 0 {
		c.fail(w, r, s, http.StatusBadRequest, "No event was selected: tick the events to replay first.")
		return
	}
	if len(ids) > maxSelection {
		c.fail(w, r, s, http.StatusBadRequest, fmt.Sprintf("%d events are selected; replay at most %d at once, or replay every dead letter matching a filter.", len(ids), maxSelection))
		return
	}
	for _, id := range ids {
		if id == "" || len(id) > maxIDBytes || !utf8.ValidString(id) {
			c.fail(w, r, s, http.StatusBadRequest, "The selection holds something that is not an event id.")
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), queryTimeout)
	defer cancel()
	// From the dead letters, only what is still dead (the page may be
	// stale); from an event's page, its delivery whatever its state. The
	// console never creates a delivery.
	res, err := c.admin.Replay(ctx, admin.ReplayParams{IDs: ids, Destination: dest, Existing: true, OnlyDead: r.PostFormValue("from") != "event"})
	if err != nil {
		c.failErr(w, r, s, "replay", err)
		return
	}
	c.cfg.Log.Info("console: replayed", "destination", dest, "events", len(res.IDs))
	done := url.Values{"replayed": {strconv.Itoa(len(res.IDs))}, "destination": {dest}}
	if r.PostFormValue("from") == "event" && len(ids) == 1 {
		http.Redirect(w, r, "/console/events/"+url.PathEscape(ids[0])+"?"+done.Encode(), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/console/dead?"+done.Encode(), http.StatusSeeOther)
}

// checkDestination refuses a replay to a destination that no running
// instance serves (by the record; this instance's own set when there is
// none): it would wait there for an instance that does.
func (c *Console) checkDestination(ctx context.Context, dest string) error {
	switch {
	case dest == "":
		return fmt.Errorf("no destination was given")
	case route.ValidName(dest) != nil:
		return fmt.Errorf("%q is not a destination name", truncate(dest, 40))
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	served, err := c.admin.Served(ctx, c.cfg.Destinations)
	if err != nil {
		return fmt.Errorf("could not read the destinations the instances serve: %w", err)
	}
	if !slices.Contains(served, dest) {
		return fmt.Errorf("destination %q is served by no running instance: its deliveries would wait for one that does", dest)
	}
	return nil
}

// confirmData is the confirmation step of a replay by filter.
type confirmData struct {
	listForm
	Count int64
}

// replayMatching replays every dead letter of a destination matching a
// filter: first it shows how many and asks, then it replays.
func (c *Console) replayMatching(w http.ResponseWriter, r *http.Request, s session) {
	form, err := parseList(r.PostForm)
	if err == nil {
		err = c.checkDestination(r.Context(), form.Filter.Destination)
	}
	if err != nil {
		c.fail(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	f := admin.ReplayParams{Status: store.StatusDead, Destination: form.Filter.Destination, Types: form.Filter.Types,
		Since: form.Filter.Since, Until: form.Filter.Until}
	confirmed := r.PostFormValue("confirm")
	if confirmed == "" {
		ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
		defer cancel()
		n, err := c.admin.CountDead(ctx, f)
		if err != nil {
			c.failErr(w, r, s, "count the dead letters", err)
			return
		}
		c.render(w, r, s, http.StatusOK, "confirm", "Replay dead letters",
			confirmData{listForm: form, Count: n})
		return
	}
	// The confirmed count bounds the replay: it replays what the user saw
	// counted, not what died since.
	max, err := strconv.ParseInt(confirmed, 10, 64)
	if err != nil || max < 1 || max > admin.CountCap {
		c.fail(w, r, s, http.StatusBadRequest, "The confirmation is malformed: ask to replay again.")
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), replayTimeout)
	defer cancel()
	f.Max = max
	res, err := c.admin.Replay(ctx, f)
	n := res.Replayed
	if err != nil {
		c.failErr(w, r, s, fmt.Sprintf("replay every dead letter (%d were replayed before the error)", n), err)
		return
	}
	c.cfg.Log.Info("console: replayed dead letters", "destination", f.Destination, "types", form.Type, "deliveries", n, "batches", res.Batches)
	done := url.Values{"replayed": {strconv.FormatInt(n, 10)}, "destination": {f.Destination}}
	http.Redirect(w, r, "/console/dead?"+done.Encode(), http.StatusSeeOther)
}
