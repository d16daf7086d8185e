package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/oncehook/oncehook/event"
)

// Writer is a Sink writing one JSON object per line to an io.Writer:
// {"id","type","created","livemode","account","api_version","payload"},
// with the payload compacted onto the line.
type Writer struct {
	// turn is held by the one Deliver writing; waiting for it honours ctx,
	// so a write stuck on a stalled pipe or a hung disk holds up the others
	// only until their own deadlines.
	turn   chan struct{}
	w      io.Writer
	file   *os.File // set by OpenFile: synced before Deliver returns, closed by Close
	torn   int64    // where a partial line left by a failed write begins, if it could not be cut off; else -1
	buf    bytes.Buffer
	closed bool
}

// NewWriter returns a JSON-lines Sink over w. NewWriter(os.Stdout) is the
// default "stdout" sink.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w, turn: make(chan struct{}, 1)} }

// OpenFile returns a JSON-lines Sink appending to path. Each Deliver syncs
// the file before it returns. A Deliver that fails (a full disk) leaves no
// part of its line in the file.
func OpenFile(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening file sink: %w", err)
	}
	return &Writer{w: f, file: f, turn: make(chan struct{}, 1), torn: -1}, nil
}

type line struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Created    *time.Time      `json:"created,omitempty"`
	Livemode   bool            `json:"livemode"`
	Account    string          `json:"account,omitempty"`
	APIVersion string          `json:"api_version,omitempty"`
	Payload    json.RawMessage `json:"payload"`
}

// Deliver writes ev as one line with a single Write.
func (s *Writer) Deliver(ctx context.Context, ev *event.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var compact bytes.Buffer
	compact.Grow(len(ev.Payload))
	if err := json.Compact(&compact, ev.Payload); err != nil {
		return fmt.Errorf("compacting payload of %s: %w", ev.ID, err)
	}
	l := line{ID: ev.ID, Type: ev.Type, Livemode: ev.Livemode, Account: ev.Account, APIVersion: ev.APIVersion, Payload: compact.Bytes()}
	if !ev.Created.IsZero() {
		c := ev.Created.UTC()
		l.Created = &c
	}
	select {
	case s.turn <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("delivering %s: waiting for the writer: %w", ev.ID, ctx.Err())
	}
	if s.closed {
		<-s.turn
		return fmt.Errorf("delivering %s: sink is closed", ev.ID)
	}
	// The write runs on its own and gives the turn back when it ends: a
	// write that blocks cannot be cancelled, but Deliver returns at ctx's end.
	done := make(chan error, 1)
	go func() {
		defer func() { <-s.turn }()
		done <- s.writeLine(&l)
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("delivering %s: %w", ev.ID, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("delivering %s: the write did not finish in time: %w", ev.ID, ctx.Err())
	}
}

// writeLine encodes l and writes it with a single Write, then syncs a file.
// The caller holds the turn.
func (s *Writer) writeLine(l *line) error {
	s.buf.Reset()
	enc := json.NewEncoder(&s.buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(l); err != nil {
		return fmt.Errorf("encoding: %w", err)
	}
	if s.file != nil {
		return s.appendLine(s.buf.Bytes())
	}
	if _, err := s.w.Write(s.buf.Bytes()); err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	return nil
}

// appendLine appends b, one line, to the file and syncs it. The file keeps
// whole lines only: a write that fails part way (a full disk writes what
// fits, then fails) or a failed sync cuts the file back to where the line
// began, so the delivery's retry starts on a line of its own. If that cut
// fails too, it is tried again before the next line, which is refused
// until it succeeds. The caller holds the turn; the file is this sink's
// alone.
func (s *Writer) appendLine(b []byte) error {
	if s.torn >= 0 {
		if err := s.file.Truncate(s.torn); err != nil {
			return fmt.Errorf("cutting off the partial line a failed write left at byte %d: %w", s.torn, err)
		}
		s.torn = -1
	}
	st, err := s.file.Stat()
	if err != nil {
		return fmt.Errorf("finding the end of the file: %w", err)
	}
	start := st.Size()
	_, err = s.file.Write(b)
	if err != nil {
		err = fmt.Errorf("writing: %w", err)
	} else if err = s.file.Sync(); err != nil {
		err = fmt.Errorf("syncing: %w", err)
	}
	if err != nil {
		if terr := s.file.Truncate(start); terr != nil {
			s.torn = start
			return fmt.Errorf("%w; cutting off the partial line: %v", err, terr)
		}
	}
	return err
}

// Close marks the sink closed and closes a file sink's file; every line was
// written by Deliver already. It waits for a write under way.
func (s *Writer) Close() error {
	s.turn <- struct{}{}
	defer func() { <-s.turn }()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.file != nil {
		return s.file.Close()
	}
	return nil
}
