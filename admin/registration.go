package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/store"
)

// HeartbeatInterval is how often a Registration refreshes its heartbeat
// by default: several times within LiveWithin.
const HeartbeatInterval = 10 * time.Second

// goneAfter is how long a crashed instance's set stays in the record (as
// gone) before a live instance removes it.
const goneAfter = 24 * time.Hour

// RegistrationConfig configures a Registration.
type RegistrationConfig struct {
	// Store writes the record. Required.
	Store *store.Store
	// Instance names this process, as the delivery history does.
	// Defaults to host:pid.
	Instance string
	// Destinations is the set this instance serves (names and filters).
	// Required.
	Destinations []route.Destination
	// Interval is how often the heartbeat is refreshed. Defaults to
	// HeartbeatInterval; at most LiveWithin/3.
	Interval time.Duration
	// Logger receives failed refreshes. Defaults to slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns c with its zero fields filled.
func (c RegistrationConfig) WithDefaults() RegistrationConfig {
	if c.Instance == "" {
		host, _ := os.Hostname()
		c.Instance = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if c.Interval <= 0 {
		c.Interval = HeartbeatInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c RegistrationConfig) validate() error {
	switch {
	case c.Store == nil:
		return errors.New("registration: no store")
	case len(c.Destinations) == 0:
		return errors.New("registration: no destinations")
	case c.Interval > LiveWithin/3:
		return fmt.Errorf("registration: a heartbeat every %s is too rare: readers count an instance as gone after %s", c.Interval, LiveWithin)
	}
	_, err := route.NewTable(c.Destinations)
	return err
}

// Registration records the destination set this instance serves in
// Postgres and keeps its heartbeat fresh, so that the command line and
// the console route and report by what the running instances serve. On
// Stop it removes its set at once (a stopped instance delivers nothing);
// a crashed instance's set counts as gone once its heartbeat is older than
// LiveWithin, and is removed a day later by any live instance.
type Registration struct {
	cfg RegistrationConfig

	mu      sync.Mutex
	started bool
	stopped bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// NewRegistration returns a Registration, or an error naming what is
// wrong with cfg.
func NewRegistration(cfg RegistrationConfig) (*Registration, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Registration{cfg: cfg}, nil
}

// Instance is the name the set is recorded under.
func (r *Registration) Instance() string { return r.cfg.Instance }

// Start records the set, then refreshes its heartbeat in the background
// until Stop. A second Start, or a Start after Stop, does nothing.
func (r *Registration) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.stopped {
		return nil
	}
	if err := r.cfg.Store.RecordDestinations(ctx, r.cfg.Instance, r.cfg.Destinations); err != nil {
		return err
	}
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.started, r.cancel, r.done = true, cancel, make(chan struct{})
	go r.loop(loopCtx)
	return nil
}

// Stop ends the heartbeat and removes the set from the record, within
// ctx. It is idempotent; a Stop before Start only prevents a later Start.
func (r *Registration) Stop(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return nil
	}
	r.stopped = true
	if !r.started {
		return nil
	}
	r.cancel()
	select {
	case <-r.done:
	case <-ctx.Done():
		return fmt.Errorf("registration: the heartbeat did not stop: %w", ctx.Err())
	}
	return r.cfg.Store.ForgetInstance(ctx, r.cfg.Instance)
}

func (r *Registration) loop(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	beats := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		beats++
		if err := r.beat(ctx, beats); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("could not refresh this instance's destination set in Postgres; the commands may count it as gone",
				"instance", r.cfg.Instance, "error", err)
		}
	}
}

// beat refreshes the heartbeat, records the set again if it went missing,
// and now and then removes the sets of instances gone long ago.
func (r *Registration) beat(ctx context.Context, n int) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Interval)
	defer cancel()
	rows, err := r.cfg.Store.HeartbeatDestinations(ctx, r.cfg.Instance)
	if err != nil {
		return err
	}
	if rows == 0 {
		if err := r.cfg.Store.RecordDestinations(ctx, r.cfg.Instance, r.cfg.Destinations); err != nil {
			return err
		}
	}
	if n%60 == 1 {
		if _, err := r.cfg.Store.PruneInstances(ctx, goneAfter); err != nil {
			return err
		}
	}
	return nil
}
