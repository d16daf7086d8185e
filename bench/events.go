package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"
)

// idPrefix starts every event id the harness makes: evt_bench_<run>_<n>.
const idPrefix = "evt_bench_"

// EventID returns the id of event n of run.
func EventID(run string, n uint64) string {
	return idPrefix + run + "_" + strconv.FormatUint(n, 10)
}

// ParseEventID splits an id made by EventID; ok is false for any other id.
func ParseEventID(id []byte) (run []byte, n uint64, ok bool) {
	if !bytes.HasPrefix(id, []byte(idPrefix)) {
		return nil, 0, false
	}
	rest := id[len(idPrefix):]
	i := bytes.LastIndexByte(rest, '_')
	if i <= 0 || i == len(rest)-1 {
		return nil, 0, false
	}
	n, err := strconv.ParseUint(string(rest[i+1:]), 10, 64)
	if err != nil {
		return nil, 0, false
	}
	return rest[:i], n, true
}

// validRunID reports whether run is 1-32 ASCII letters and digits.
func validRunID(run string) bool {
	if run == "" || len(run) > 32 {
		return false
	}
	for _, c := range []byte(run) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// GeneratorConfig says which events a Generator makes.
type GeneratorConfig struct {
	// Run is part of every event id; 1-32 letters and digits. Required.
	Run string
	// LargeShare is the share of 30-80 KB invoices with 100-250 lines.
	// Defaults to 0.05; negative means none.
	LargeShare float64
	// ThinShare is the share of thin events ("object": "v2.core.event").
	// Defaults to 0.02; negative means none.
	ThinShare float64
	// Seed picks the body variants. Defaults to 1.
	Seed uint64
	// Created is the creation time written into every event. Defaults to now.
	Created time.Time
	// Keys, if set, makes keyed events (the ordered scenarios): event n is
	// about object n%Keys (its data.object.id), a snapshot body of that
	// object's own variant, created Created plus n/Keys seconds, so that
	// each object's events are in created order in the order of n.
	Keys int
}

// WithDefaults fills the zero fields.
func (c GeneratorConfig) WithDefaults() GeneratorConfig {
	if c.LargeShare == 0 {
		c.LargeShare = 0.05
	}
	if c.ThinShare == 0 {
		c.ThinShare = 0.02
	}
	c.LargeShare, c.ThinShare = max(c.LargeShare, 0), max(c.ThinShare, 0)
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Created.IsZero() {
		c.Created = time.Now()
	}
	return c
}

func (c GeneratorConfig) validate() error {
	if !validRunID(c.Run) {
		return fmt.Errorf("run id %q must be 1-32 letters and digits", c.Run)
	}
	if c.Keys < 0 || c.Keys > 1_000_000 {
		return fmt.Errorf("keys %d: want 0 to 1,000,000", c.Keys)
	}
	if c.LargeShare+c.ThinShare > 1 {
		return errors.New("large and thin shares add up to more than 1")
	}
	return nil
}

// Event is one generated Stripe event.
type Event struct {
	N    uint64
	ID   string
	Type string
	Body []byte
}

// Generator makes pretty-printed Stripe events. Event(n) always returns the
// same bytes for the same n, so a replay resends the original body. It is
// safe for concurrent use.
type Generator struct {
	cfg GeneratorConfig
	*variants
	largeCut, thinCut    uint64 // thresholds on a 0-9999 draw
	createdUnix, created string
}

// NewGenerator builds the body variants: a few hundred of them, so making
// an event costs one allocation and a copy, not a JSON encoding.
func NewGenerator(cfg GeneratorConfig) (*Generator, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	g := &Generator{
		cfg:         cfg,
		largeCut:    uint64(cfg.LargeShare * 10000),
		createdUnix: strconv.FormatInt(cfg.Created.Unix(), 10),
		created:     strconv.Quote(cfg.Created.UTC().Format("2006-01-02T15:04:05.000Z")),
	}
	g.thinCut = g.largeCut + uint64(cfg.ThinShare*10000)
	g.variants = variantsFor(cfg.Seed)
	return g, nil
}

// variants are the body templates made from one seed.
type variants struct {
	normal, large, thin []template
}

var (
	variantsMu    sync.Mutex
	variantsCache = map[uint64]*variants{}
)

// variantsFor makes the templates for seed once; they do not depend on
// the run id.
func variantsFor(seed uint64) *variants {
	variantsMu.Lock()
	defer variantsMu.Unlock()
	if v := variantsCache[seed]; v != nil {
		return v
	}
	v := &variants{}
	r := rand.New(rand.NewPCG(seed, 0x6f6e6365686f6f6b))
	for i := range 192 {
		build := snapshotBuilders[i%len(snapshotBuilders)]
		v.normal = append(v.normal, newTemplate(build(r)))
	}
	for range 24 {
		v.large = append(v.large, newTemplate(largeInvoicePaid(r)))
	}
	for range 8 {
		v.thin = append(v.thin, newTemplate(thinEvent(r)))
	}
	variantsCache[seed] = v
	return v
}

// Run returns the run id in the generator's event ids.
func (g *Generator) Run() string { return g.cfg.Run }

// Event returns event n.
func (g *Generator) Event(n uint64) Event {
	h := mix(n ^ g.cfg.Seed)
	if g.cfg.Keys > 0 {
		return g.keyedEvent(n)
	}
	var t *template
	switch d := h % 10000; {
	case d < g.largeCut:
		t = &g.large[(h>>16)%uint64(len(g.large))]
	case d < g.thinCut:
		t = &g.thin[(h>>16)%uint64(len(g.thin))]
	default:
		t = &g.normal[(h>>16)%uint64(len(g.normal))]
	}
	id := EventID(g.cfg.Run, n)
	created := g.createdUnix
	if t.thin {
		created = g.created
	}
	body := make([]byte, 0, len(t.head)+len(id)+len(t.mid)+len(created)+len(t.tail)+2)
	body = append(body, t.head...)
	body = append(body, id...)
	body = append(body, t.mid...)
	body = append(body, created...)
	body = append(body, t.tail...)
	return Event{N: n, ID: id, Type: t.typ, Body: body}
}

// mix is splitmix64's finalizer: a cheap, well-spread hash of n.
func mix(n uint64) uint64 {
	n += 0x9e3779b97f4a7c15
	n = (n ^ (n >> 30)) * 0xbf58476d1ce4e5b9
	n = (n ^ (n >> 27)) * 0x94d049bb133111eb
	return n ^ (n >> 31)
}

// Placeholders in a template, replaced per event.
const (
	idMark      = "@@ID@@"
	createdMark = `"@@CREATED@@"`
)

// template is one body variant cut around its id and created values.
type template struct {
	typ             string
	thin            bool
	objectID        string // data.object.id; "" for thin events
	head, mid, tail []byte
}

// newTemplate pretty-prints ev (2-space indent, as Stripe sends events)
// and cuts it at the placeholders.
func newTemplate(ev obj) template {
	b, err := json.MarshalIndent(ev, "", "  ")
	if err != nil {
		panic(err) // the builders only use encodable values
	}
	s := string(b)
	i := strings.Index(s, idMark)
	j := strings.Index(s, createdMark)
	if i < 0 || j < i {
		panic("bench: template without id or created")
	}
	typ, _ := ev.get("type").(string)
	var objectID string
	if data, ok := ev.get("data").(obj); ok {
		if o, ok := data.get("object").(obj); ok {
			objectID, _ = o.get("id").(string)
		}
	}
	return template{
		typ:      typ,
		objectID: objectID,
		thin:     ev.get("object") == "v2.core.event",
		head:     []byte(s[:i]),
		mid:      []byte(s[i+len(idMark) : j]),
		tail:     []byte(s[j+len(createdMark):]),
	}
}
