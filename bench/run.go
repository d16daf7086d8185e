package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"
)

// RunConfig is one scenario run.
type RunConfig struct {
	// Scenario is one of Scenarios. Required.
	Scenario string
	// URLs are the webhook URLs. Spread spreads copies over all of them;
	// the other scenarios use the first. Required.
	URLs []string
	// Secret is the receiver's STRIPE_WEBHOOK_SECRET (the first of a
	// comma-separated list signs). Required.
	Secret string
	// Sink checks delivery end to end; nil skips the check (the floor).
	Sink *SinkClient
	// Destinations are Fanout's: the receiver delivers each event to the
	// sink's path /NAME of every one. Defaults to FanoutDestinations. The
	// other scenarios expect each event once at the sink's /.
	Destinations []string
	// NATSURL is the NATS scenario's server, nats://host:port: the stream
	// is created there and read back. Required for NATS.
	NATSURL string
	// AMQPURL is the RabbitMQ scenario's broker and vhost,
	// amqp://user:password@host:port/VHOST: the exchange and queue are
	// declared there and the queue drained. Required for RabbitMQ.
	AMQPURL string
	// Connections is the most requests in flight, and each URL's
	// connection limit. Defaults to 64.
	Connections int
	// Duration is how long the measured phase sends. Defaults to 10s
	// unless Events is set.
	Duration time.Duration
	// Events, if set, sends this many events instead of running for
	// Duration (a storm sends each Copies times).
	Events int
	// Rate, if set, sends this many requests per second whatever the
	// answers (open loop); else each connection waits for its answer
	// (closed loop).
	Rate float64
	// Copies is how many times Storm and Spread send each event. Defaults
	// to 8 for Storm and 2 for Spread.
	Copies int
	// BadShare is Mixed's share of bad requests. Defaults to 0.1.
	BadShare float64
	// LargeShare and ThinShare shape the events (see GeneratorConfig).
	LargeShare, ThinShare float64
	// ReplaySet is how many events Replay accepts in its warm-up. Defaults
	// to 10,000, or Events if that is smaller.
	ReplaySet int
	// Hostile is the attack Hostile holds during its measured phase.
	Hostile HostileConfig
	// DrainTimeout bounds the wait for every event to reach the sink.
	// Defaults to 30s.
	DrainTimeout time.Duration
	// Settle is how long to wait after the drain for late duplicates.
	// Defaults to 1s.
	Settle time.Duration
	// RetryFor is how long a request answered 5xx or lost in transport is
	// retried, from its first failure. Defaults to 30s.
	RetryFor time.Duration
	// Timeout bounds one request. Defaults to 30s.
	Timeout time.Duration
	// PIDs are receiver processes whose memory is recorded.
	PIDs []int
	// Ledger, if set, records the ledger's inserts and deletes over the
	// measured phase (and first waits for the pruner, if it prunes).
	Ledger *LedgerConfig
	// Progress gets a line every second; nil for none.
	Progress io.Writer
	// Name labels the result. Defaults to Scenario.
	Name string
	// Run is the run id in every event id. Defaults to the scenario and
	// random letters.
	Run string
	// Seed picks event bodies and bad requests. Defaults to 1.
	Seed uint64
}

// WithDefaults fills the zero fields.
func (c RunConfig) WithDefaults() RunConfig {
	if c.Connections == 0 {
		c.Connections = 64
	}
	if c.Duration == 0 && c.Events == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Copies == 0 {
		c.Copies = defaultCopies(c.Scenario)
	}
	if c.BadShare == 0 {
		c.BadShare = 0.1
	}
	if c.ReplaySet == 0 {
		c.ReplaySet = 10000
		if c.Events > 0 && c.Events < c.ReplaySet {
			c.ReplaySet = c.Events
		}
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.Settle == 0 {
		c.Settle = time.Second
	}
	if c.RetryFor == 0 {
		c.RetryFor = 30 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Name == "" {
		c.Name = c.Scenario
	}
	if c.Run == "" {
		c.Run = c.Scenario + randomLetters(6)
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Scenario == Fanout && len(c.Destinations) == 0 {
		c.Destinations = FanoutDestinations
	}
	return c
}

func (c RunConfig) validate() error {
	var errs []error
	if !knownScenario(c.Scenario) {
		errs = append(errs, fmt.Errorf("scenario %q: want one of %v", c.Scenario, Scenarios))
	}
	if len(c.URLs) == 0 {
		errs = append(errs, errors.New("no URL to send to"))
	}
	if c.Secret == "" {
		errs = append(errs, errors.New("no signing secret"))
	}
	if c.Connections < 1 || c.Events < 0 || c.Duration < 0 || c.Rate < 0 || c.ReplaySet < 1 {
		errs = append(errs, errors.New("connections, events, duration, rate and replay set must not be negative"))
	}
	if err := checkCopies(c.Copies); err != nil {
		errs = append(errs, err)
	}
	if c.BadShare < 0 || c.BadShare > 1 {
		errs = append(errs, fmt.Errorf("bad share %g: want 0 to 1", c.BadShare))
	}
	if c.Scenario == Fanout {
		if err := checkDestinations(c.Destinations); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Scenario == NATS && c.NATSURL == "" {
		errs = append(errs, errors.New("nats: no NATS server URL"))
	}
	if c.Scenario == RabbitMQ && c.AMQPURL == "" {
		errs = append(errs, errors.New("rabbitmq: no AMQP URL"))
	}
	if c.Ledger != nil {
		if err := c.Ledger.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func randomLetters(n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

// Second is one second of a run's measured phase.
type Second struct {
	At     time.Time `json:"at"` // the end of the second
	RPS    float64   `json:"rps"`
	P99    float64   `json:"p99_ms"`
	Errors int64     `json:"errors"` // 5xx and transport errors
}

// ProcessMemory is a receiver's memory after a run, in KiB.
type ProcessMemory struct {
	PID    int   `json:"pid"`
	RSSKB  int64 `json:"rss_kb"`
	PeakKB int64 `json:"peak_kb"` // VmHWM: the peak over the process's life
}

// Result is one run's numbers.
type Result struct {
	Name         string          `json:"name"`
	Scenario     string          `json:"scenario"`
	Run          string          `json:"run"`
	URLs         []string        `json:"urls"`
	Mode         string          `json:"mode"` // closed or open loop
	Connections  int             `json:"connections"`
	Rate         float64         `json:"rate,omitempty"`
	Copies       int             `json:"copies"`
	Destinations []string        `json:"destinations,omitempty"` // fanout's
	Started      time.Time       `json:"started"`
	Seconds      float64         `json:"seconds"` // measured phase: first send to last answer
	Events       int64           `json:"events"`  // distinct events sent in the measured phase
	WarmupEvents int64           `json:"warmup_events,omitempty"`
	RPS          float64         `json:"rps"` // answers per second, retries included
	Counts       Counts          `json:"counts"`
	Latency      Latency         `json:"latency"`
	Timeline     []Second        `json:"timeline"`
	Verify       *Verification   `json:"verify,omitempty"`
	Memory       []ProcessMemory `json:"memory,omitempty"`
	Hostile      *HostileStats   `json:"hostile,omitempty"`
	Ledger       *LedgerWindow   `json:"ledger,omitempty"`
}

// OK reports whether the run broke no guarantee (timings never fail it).
func (r *Result) OK() bool { return r.Verify == nil || r.Verify.OK() }

// Run runs one scenario: the warm-up if it has one, the measured phase,
// then the end-to-end check. The error is for a run that could not be
// made; broken guarantees are in Result.Verify.
func Run(ctx context.Context, cfg RunConfig) (*Result, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	urls := cfg.URLs[:1]
	if cfg.Scenario == Spread {
		urls = cfg.URLs
	}
	gcfg := GeneratorConfig{Run: cfg.Run, LargeShare: cfg.LargeShare, ThinShare: cfg.ThinShare, Seed: cfg.Seed}
	if cfg.Scenario == Ordered || cfg.Scenario == Unordered {
		gcfg.Keys = OrderKeys
	}
	gen, err := NewGenerator(gcfg)
	if err != nil {
		return nil, err
	}
	track := &tracker{}
	l, err := newLoader(ctx, urls, max(cfg.Connections, cfg.Copies), cfg.Timeout, cfg.RetryFor, NewSigner(cfg.Secret), track)
	if err != nil {
		return nil, err
	}
	defer l.close()
	var badCut uint64
	if cfg.Scenario == Mixed {
		badCut = uint64(cfg.BadShare * 10000)
	}
	dests := []string{""}
	switch cfg.Scenario {
	case Fanout:
		dests = cfg.Destinations
	case Ordered, Unordered:
		dests = []string{OrderedDestination}
	}
	var v *verifier
	if cfg.Sink != nil {
		v = &verifier{sink: cfg.Sink, gen: gen, track: track, badCut: badCut, dests: dests, ordered: cfg.Scenario == Ordered}
	}
	if cfg.Scenario == NATS || cfg.Scenario == RabbitMQ {
		tally := newBrokerTally(cfg.Run)
		var r brokerReader
		if cfg.Scenario == NATS {
			r, err = startNATS(ctx, cfg.NATSURL, tally)
		} else {
			r, err = startAMQP(ctx, cfg.AMQPURL, tally)
		}
		if err != nil {
			return nil, err
		}
		defer r.close()
		v = &verifier{sink: tally, gen: gen, track: track, dests: dests, atLeastOnce: cfg.Scenario == RabbitMQ}
	}
	res := &Result{
		Name: cfg.Name, Scenario: cfg.Scenario, Run: cfg.Run, URLs: urls, Mode: "closed",
		Connections: cfg.Connections, Rate: cfg.Rate, Copies: cfg.Copies,
	}
	if cfg.Scenario == Fanout {
		res.Destinations = dests
	}
	if cfg.Rate > 0 {
		res.Mode = "open"
	}

	newSource := func() *source {
		s := &source{gen: gen, track: track, copies: cfg.Copies, urls: len(urls), badCut: badCut}
		if cfg.Events > 0 {
			s.limit = uint64(cfg.Events)
		} else {
			s.deadline = time.Now().Add(cfg.Duration)
		}
		return s
	}
	var events uint64 // events 0..events-1 were sent
	if cfg.Scenario == Replay {
		// The warm-up: accept the set, closed loop, unmeasured, and let it
		// reach the sink before the replays start.
		warm := newSource()
		warm.limit, warm.copies = uint64(cfg.ReplaySet), 1
		fmt.Fprintf(orDiscard(cfg.Progress), "%-14s warm-up: accepting %d events\n", cfg.Name, cfg.ReplaySet)
		l.closedLoop(warm, cfg.Connections, newRecorder())
		events = warm.events()
		res.WarmupEvents = int64(events)
		if v != nil {
			if _, _, err := v.waitDelivered(ctx, events, cfg.DrainTimeout); err != nil {
				return nil, err
			}
		}
	}

	var att *attack
	if cfg.Scenario == Hostile {
		fmt.Fprintf(orDiscard(cfg.Progress), "%-14s opening the attack's connections\n", cfg.Name)
		if att, err = startAttack(ctx, urls[0], cfg.Hostile, 30*time.Second); err != nil {
			return nil, err
		}
		defer att.stop()
		time.Sleep(time.Second) // slow bodies and headers under way
	}

	var probe *ledgerProbe
	if cfg.Ledger != nil {
		if probe, err = openLedgerProbe(ctx, *cfg.Ledger); err != nil {
			return nil, err
		}
		defer probe.close()
		if err := probe.waitPruning(ctx, orDiscard(cfg.Progress), cfg.Name); err != nil {
			return nil, err
		}
		if err := probe.open(ctx); err != nil {
			return nil, err
		}
	}

	src := newSource()
	if cfg.Scenario == Replay {
		src.cycle = events
	}
	rec := newRecorder()
	res.Started = time.Now()
	stopProgress := startProgress(cfg.Name, rec, cfg.Progress, &res.Timeline)
	if cfg.Rate > 0 {
		l.openLoop(src, cfg.Rate, max(1024, 16*cfg.Connections), rec)
	} else {
		l.closedLoop(src, cfg.Connections, rec)
	}
	stopProgress()
	if probe != nil {
		if res.Ledger, err = probe.shut(ctx); err != nil {
			return nil, err
		}
	}
	var last time.Time
	res.Counts, res.Latency, last = rec.result()
	if last.IsZero() {
		last = time.Now()
	}
	res.Seconds = last.Sub(res.Started).Seconds()
	if res.Seconds > 0 {
		res.RPS = float64(res.Counts.Requests) / res.Seconds
	}
	res.Events = int64(src.events())
	events = max(events, src.events())
	if att != nil {
		st := att.stop()
		res.Hostile = &st
	}

	if v != nil {
		fmt.Fprintf(orDiscard(cfg.Progress), "%-14s verifying %d events at the sink\n", cfg.Name, events)
		res.Verify, err = v.verify(ctx, events, last, cfg.DrainTimeout, cfg.Settle)
		if err != nil {
			return nil, err
		}
		if cfg.Sink != nil {
			_ = cfg.Sink.Forget(ctx, cfg.Run)
		}
	}
	for _, pid := range cfg.PIDs {
		if m, err := readMemory(pid); err == nil {
			res.Memory = append(res.Memory, m)
		}
	}
	return res, nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
