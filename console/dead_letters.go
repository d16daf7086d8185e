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

	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/route"
)

// maxSelection bounds the events one "replay selected" names.
const maxSelection = 1000

// replayTimeout bounds a replay of every matching dead letter; it goes on
// when the browser leaves, as the user confirmed it.
const replayTimeout = 10 * time.Minute

func (c *Console) deadLetters(w http.ResponseWriter, r *http.Request, s session) {
	q := r.URL.Query()
	q.Set("status", delivery.StatusDead)
	form, err := parseList(q)
	d := listData{listForm: form, Budget: delivery.PageScanBudget, Selectable: true}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	backlogs, berr := delivery.Backlogs(ctx, c.cfg.Pool, c.cfg.Destinations)
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
	if err := c.checkDestination(dest); err != nil {
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
	found, err := delivery.ReplayExisting(ctx, c.cfg.Pool, ids, dest, r.PostFormValue("from") != "event")
	if err != nil {
		c.failErr(w, r, s, "replay", err)
		return
	}
	c.cfg.Log.Info("console: replayed", "destination", dest, "events", len(found))
	done := url.Values{"replayed": {strconv.Itoa(len(found))}, "destination": {dest}}
	if r.PostFormValue("from") == "event" && len(ids) == 1 {
		http.Redirect(w, r, "/console/events/"+url.PathEscape(ids[0])+"?"+done.Encode(), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/console/dead?"+done.Encode(), http.StatusSeeOther)
}

// checkDestination refuses a replay to a destination this instance does
// not deliver to: it would wait there for an instance that does.
func (c *Console) checkDestination(dest string) error {
	switch {
	case dest == "":
		return fmt.Errorf("no destination was given")
	case route.ValidName(dest) != nil:
		return fmt.Errorf("%q is not a destination name", truncate(dest, 40))
	case !slices.Contains(c.cfg.Destinations, dest):
		return fmt.Errorf("destination %q is not configured on this instance: replay it with `receiver replay --destination` where it is", dest)
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
		err = c.checkDestination(form.Filter.Destination)
	}
	if err != nil {
		c.fail(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	f := delivery.DeadFilter{Destination: form.Filter.Destination, TypePrefix: form.Filter.TypePrefix, Since: form.Filter.Since, Until: form.Filter.Until}
	confirmed := r.PostFormValue("confirm")
	if confirmed == "" {
		ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
		defer cancel()
		n, err := delivery.CountDead(ctx, c.cfg.Pool, f)
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
	if err != nil || max < 1 || max > delivery.CountCap {
		c.fail(w, r, s, http.StatusBadRequest, "The confirmation is malformed: ask to replay again.")
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), replayTimeout)
	defer cancel()
	n, err := delivery.ReplayDead(ctx, c.cfg.Pool, f, max)
	if err != nil {
		c.failErr(w, r, s, fmt.Sprintf("replay every dead letter (%d were replayed before the error)", n), err)
		return
	}
	c.cfg.Log.Info("console: replayed dead letters", "destination", f.Destination, "type_prefix", f.TypePrefix, "deliveries", n)
	done := url.Values{"replayed": {strconv.FormatInt(n, 10)}, "destination": {f.Destination}}
	http.Redirect(w, r, "/console/dead?"+done.Encode(), http.StatusSeeOther)
}
