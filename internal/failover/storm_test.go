package failover

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/service"
	"github.com/oncehook/oncehook/internal/stripefake"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/receiver"
	"github.com/oncehook/oncehook/route"
)

// stripeKey is the fake Events API's key, the instances' STRIPE_API_KEY.
const stripeKey = "sk_test_failover"

// stormOptions shape one failover storm; zero fields take the issue's
// sizes.
type stormOptions struct {
	Mode        testenv.Replication
	Events      int // webhooks sent, each until a 200; default 3,000
	Concurrency int // at a time; default 16
	// Rate is how many new events a second Stripe starts sending (retries
	// come on top); default 400, so that the storm outlasts the fault on a
	// machine that stores more than that.
	Rate       int
	FaultAfter int           // acknowledged before replication is held; default half of Events
	Hold       time.Duration // replication held back before the crash; default 2 s
	// Down is the time from the crash to the promotion, while an HA
	// manager (Patroni, RDS) notices; default 1 s.
	Down time.Duration
	// Deadline bounds the storm after the promotion: an event with no 200
	// by then fails the test. Default 20 s.
	Deadline time.Duration
	// Tune, if set, adjusts each instance's config before it is built.
	Tune func(*service.Config)
}

func (o stormOptions) withDefaults() stormOptions {
	if o.Events == 0 {
		o.Events = 3000
	}
	if o.Concurrency == 0 {
		o.Concurrency = 16
	}
	if o.Rate == 0 {
		o.Rate = 400
	}
	if o.FaultAfter == 0 {
		o.FaultAfter = o.Events / 2
	}
	if o.Hold == 0 {
		o.Hold = 2 * time.Second
	}
	if o.Down == 0 {
		o.Down = time.Second
	}
	if o.Deadline == 0 {
		o.Deadline = 20 * time.Second
	}
	return o
}

// answer is one webhook response (Code 0: no response, Err says why).
type answer struct {
	ID          string
	Code        int
	Err         error
	Sent, Got   time.Time
	Body        string
	Instance    int
	AttemptOfID int
}

// stormResult is what a failover storm did and found.
type stormResult struct {
	Pair      *testenv.PostgresPair
	Promoted  *pgxpool.Pool // on the promoted standby, the primary now
	Sink      *harness.RecordingSink
	Stripe    *stripefake.Server
	Instances []*service.Service
	Logs      *harness.Buffer // the instances' warnings and errors

	IDs     []string             // every event sent, in order
	Acked   map[string]time.Time // id → when its 200 came
	Answers []answer             // every attempt, in the order answered

	// When replication was held, the crash began and was done, and the
	// promotion began and was done (the standby accepts writes).
	HeldAt, CrashAt, CrashedAt, PromoteAt, PromotedAt time.Time

	AckedBeforeCrash map[string]bool // ids answered 200 before CrashedAt
	// LostAtPromotion are the ids acknowledged before the crash that the
	// promoted primary's ledger lacked right after the promotion.
	LostAtPromotion []string
}

// count counts the answers that match.
func (r *stormResult) count(match func(a answer) bool) int {
	n := 0
	for _, a := range r.Answers {
		if match(a) {
			n++
		}
	}
	return n
}

// UnavailableWhileHeld is the number of 503 answers while replication was
// held, before the crash began.
func (r *stormResult) UnavailableWhileHeld() int {
	return r.count(func(a answer) bool { return a.Code == 503 && a.Got.After(r.HeldAt) && a.Got.Before(r.CrashAt) })
}

// Unavailable is the number of 503 answers.
func (r *stormResult) Unavailable() int { return r.count(func(a answer) bool { return a.Code == 503 }) }

// ClientErrors is the number of 4xx answers.
func (r *stormResult) ClientErrors() int {
	return r.count(func(a answer) bool { return a.Code >= 400 && a.Code < 500 })
}

// FirstOKAfterPromotion is the time from the promotion's end to the first
// 200 answered to a request sent after it (-1 if none).
func (r *stormResult) FirstOKAfterPromotion() time.Duration { return r.firstOKAfter(r.PromotedAt) }

// FirstOKAfterCrash is the time from the crash to the first 200 answered
// to a request sent after it: the whole outage (-1 if none).
func (r *stormResult) FirstOKAfterCrash() time.Duration { return r.firstOKAfter(r.CrashedAt) }

func (r *stormResult) firstOKAfter(at time.Time) time.Duration {
	first := time.Duration(-1)
	for _, a := range r.Answers {
		if a.Code == 200 && a.Sent.After(at) {
			if d := a.Got.Sub(at); first < 0 || d < first {
				first = d
			}
		}
	}
	return first
}

// StoredThough503 are the ids answered 503 and then, on a later try,
// 200 duplicate: their commit reached Postgres (and the standby) though
// the instance saw it fail. No instance delivers them until their
// delivery's lease (DELIVERY_LEASE) has passed and a sweeper takes them.
func (r *stormResult) StoredThough503() []string {
	failed := map[string]bool{}
	var ids []string
	for _, a := range r.Answers {
		switch {
		case a.Code == 503:
			failed[a.ID] = true
		case a.Code == 200 && failed[a.ID] && strings.Contains(a.Body, `"duplicate"`):
			ids = append(ids, a.ID)
		}
	}
	return ids
}

// MissingNow are the acknowledged ids the promoted primary's ledger lacks now.
func (r *stormResult) MissingNow(t testing.TB) []string {
	t.Helper()
	acked := make([]string, 0, len(r.Acked))
	for id := range r.Acked {
		acked = append(acked, id)
	}
	return missingFrom(t, r.Promoted, acked)
}

// Summary is the run's numbers on one line, for the logs and the report.
func (r *stormResult) Summary(t testing.TB) string {
	return fmt.Sprintf("failover %s: events %d, acked %d (%d before the crash), lost at promotion %d, missing now %d, "+
		"first 200 %.2fs after the promotion (%.2fs after the crash), answers 503 %d (%d while replication was held), "+
		"4xx %d, no response %d, stored though answered 503 (a later try answered duplicate) %d; hold %s, promotion took %s",
		r.Pair.Mode(), len(r.IDs), len(r.Acked), len(r.AckedBeforeCrash), len(r.LostAtPromotion), len(r.MissingNow(t)),
		r.FirstOKAfterPromotion().Seconds(), r.FirstOKAfterCrash().Seconds(), r.Unavailable(), r.UnavailableWhileHeld(),
		r.ClientErrors(), r.count(func(a answer) bool { return a.Code == 0 }), len(r.StoredThough503()),
		r.CrashAt.Sub(r.HeldAt).Round(time.Millisecond), r.PromotedAt.Sub(r.PromoteAt).Round(time.Millisecond))
}

// failoverStorm starts a primary with a streaming standby and two
// instances on its multi-host URL (with Redis, a reconciler on a fake
// Events API, and the pruner), and sends o.Events signed webhooks, o.Rate
// a second and o.Concurrency at a time, each retried, on the other
// instance in turn, until a 200, like Stripe. Once o.FaultAfter are
// acknowledged it holds replication back for o.Hold, crashes the primary
// and, o.Down later, promotes the standby. It returns when every event
// has its 200, failing the test if one has none o.Deadline after the
// promotion.
func failoverStorm(t *testing.T, o stormOptions) *stormResult {
	t.Helper()
	o = o.withDefaults()
	r := &stormResult{
		Pair:   testenv.StartPostgresPair(t, o.Mode),
		Sink:   harness.NewRecordingSink(),
		Stripe: stripefake.New(t, stripeKey),
		Logs:   &harness.Buffer{},
		Acked:  map[string]time.Time{},
	}
	_, prefix := testenv.Redis(t) // deletes the instances' keys at the end
	for range 2 {
		r.Instances = append(r.Instances, startInstance(t, r, prefix, o))
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("instances' warnings and errors (tail):\n%s", tail(r.Logs.String(), 40))
		}
	})
	urls := make([]string, len(r.Instances))
	for i, s := range r.Instances {
		urls[i] = "http://" + s.Addr() + receiver.WebhookPath
	}

	run := testenv.RandomHex(4)
	for i := range o.Events {
		r.IDs = append(r.IDs, fmt.Sprintf("evt_failover_%s_%04d", run, i))
	}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		deadline = make(chan struct{}) // closed o.Deadline after the promotion
		todo     = make(chan int)
	)
	endStorm := sync.OnceFunc(func() { close(deadline) })
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	t.Cleanup(func() { // a test that failed before the end: stop the senders
		endStorm()
		wg.Wait()
	})
	for range o.Concurrency {
		wg.Go(func() {
			for i := range todo {
				id := r.IDs[i]
				body := harness.EventBody(id, "invoice.paid")
				// Stripe's Events API lists the event from its creation;
				// it counts as delivered once it has its 200, so the
				// periodic reconciler (delivery_success=false) never
				// lists it, only a failover's heal does.
				r.Stripe.Add(stripefake.Event{ID: id, Type: "invoice.paid", Created: time.Now(), DeliverySuccess: true})
				for attempt := 0; ; attempt++ {
					target := (i + attempt) % len(urls)
					a := post(client, urls[target], body)
					a.ID, a.Instance, a.AttemptOfID = id, target, attempt
					mu.Lock()
					r.Answers = append(r.Answers, a)
					if a.Code == 200 {
						r.Acked[id] = a.Got
					}
					mu.Unlock()
					if a.Code == 200 {
						break
					}
					select {
					case <-deadline:
						t.Errorf("%s: no 200 after %d attempts, the last %d %v %q", id, attempt+1, a.Code, a.Err, a.Body)
						return
					case <-time.After(50 * time.Millisecond): // Stripe's retry backoff, shortened
					}
				}
			}
		})
	}
	go func() {
		defer close(todo)
		tick := time.NewTicker(time.Second / time.Duration(o.Rate))
		defer tick.Stop()
		for i := range o.Events {
			select {
			case <-tick.C:
			case <-deadline:
				return
			}
			select {
			case todo <- i:
			case <-deadline:
				return
			}
		}
	}()
	acked := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(r.Acked)
	}

	eventually.Require(t, 40*time.Second, fmt.Sprintf("%d events acknowledged", o.FaultAfter),
		func() bool { return acked() >= o.FaultAfter })
	r.HeldAt = time.Now()
	r.Pair.HoldReplication()
	time.Sleep(o.Hold) // the fault window: commits do not reach the standby
	r.CrashAt = time.Now()
	r.Pair.CrashPrimary(t)
	r.CrashedAt = time.Now()
	mu.Lock()
	r.AckedBeforeCrash = map[string]bool{}
	for id, at := range r.Acked {
		if at.Before(r.CrashedAt) {
			r.AckedBeforeCrash[id] = true
		}
	}
	mu.Unlock()
	time.Sleep(o.Down) // the fault window: no primary
	r.PromoteAt = time.Now()
	r.Pair.Promote(t)
	r.PromotedAt = time.Now()
	var err error
	if r.Promoted, err = pgxpool.New(context.Background(), r.Pair.StandbyURL()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Promoted.Close)
	r.LostAtPromotion = missingFrom(t, r.Promoted, slices.Collect(func(yield func(string) bool) {
		for id := range r.AckedBeforeCrash {
			if !yield(id) {
				return
			}
		}
	}))
	stop := time.AfterFunc(o.Deadline, endStorm)
	wg.Wait()
	stop.Stop()
	sortAnswers(r.Answers)
	if len(r.Acked) != o.Events {
		t.Fatalf("%d of %d events acknowledged", len(r.Acked), o.Events)
	}
	return r
}

// startInstance builds an instance as `serve` does, from a Config holding
// the pair's multi-host URL, and starts it; it is stopped when the test
// ends.
func startInstance(t *testing.T, r *stormResult, prefix string, o stormOptions) *service.Service {
	t.Helper()
	cfg := service.Config{
		ListenAddr: "127.0.0.1:0", Secrets: []string{harness.Secret}, Tolerance: 5 * time.Minute,
		DatabaseURL: r.Pair.MultiHostURL(), RedisURL: testenv.RedisURL(t), RedisTimeout: 50 * time.Millisecond,
		RedisKeyPrefix: prefix, DedupTTL: 72 * time.Hour, DedupRecentIDs: 100_000, MaxBodyBytes: 1 << 20,
		Workers: 32, QueueSize: 10_000, QueueMaxBytes: delivery.DefaultQueueMaxBytes, DeliveryMaxAttempts: 15,
		DeliveryTimeout: 10 * time.Second, Retention: 720 * time.Hour, PruneDuty: 75,
		MaxConcurrency: 512, MaxConnections: 10_000, MaxInflightBytes: 64 << 20,
		ReadTimeout: 10 * time.Second, IdleTimeout: time.Minute,
		Stripe: service.StripeConfig{APIKey: stripeKey, APIBase: r.Stripe.URL(), ReconcileInterval: time.Second,
			ReconcileOverlap: 5 * time.Minute, ReconcileLookback: time.Hour},
	}
	if o.Tune != nil {
		o.Tune(&cfg)
	}
	log := slog.New(slog.NewTextHandler(r.Logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx := context.Background()
	svc, err := service.New(ctx, cfg, service.WithLogger(log),
		// The recording sink answers at once; a short timeout allows a
		// short DELIVERY_LEASE (it must exceed the timeout by 10 s).
		service.WithDestinations([]delivery.Destination{{Name: route.DefaultName, Sink: r.Sink, DeliveryTimeout: 2 * time.Second}}),
		service.WithPruner(func(c *delivery.PrunerConfig) { c.Interval = 200 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = svc.Stop(ctx)
	})
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return svc
}

// post sends body, signed now, to url.
func post(client *http.Client, url string, body []byte) answer {
	a := answer{Sent: time.Now()}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		a.Err = err
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", harness.Sign(body))
	resp, err := client.Do(req)
	a.Got = time.Now()
	if err != nil {
		a.Err = err
		return a
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	a.Code, a.Body = resp.StatusCode, strings.TrimSpace(string(b))
	return a
}

func sortAnswers(as []answer) {
	slices.SortStableFunc(as, func(a, b answer) int { return a.Got.Compare(b.Got) })
}

// missingFrom returns the ids the ledger in pool lacks.
func missingFrom(t testing.TB, pool *pgxpool.Pool, ids []string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := pool.Query(ctx, `SELECT event_id FROM stripe_webhook_events WHERE event_id = ANY($1)`, ids)
	if err != nil {
		t.Fatalf("reading the promoted primary's ledger: %v", err)
	}
	have := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		have[id] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("reading the promoted primary's ledger: %v", err)
	}
	var missing []string
	for _, id := range ids {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	slices.Sort(missing)
	return missing
}

// counter is the value of the counter name{label="value"} in m.
func counter(t testing.TB, m *metrics.Metrics, name, label, value string) float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return mt.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// describe lists, for up to 5 of ids, every answer and the delivery rows
// on the promoted primary.
func (r *stormResult) describe(t testing.TB, ids []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d events:", len(ids))
	for _, id := range ids[:min(5, len(ids))] {
		fmt.Fprintf(&b, "\n  %s:", id)
		for _, a := range r.Answers {
			if a.ID == id {
				fmt.Fprintf(&b, " [%s instance %d: %d %q %v]", a.Got.Sub(r.CrashAt).Round(time.Millisecond), a.Instance, a.Code, a.Body, a.Err)
			}
		}
		var status string
		var attempts int
		var locked *time.Time
		err := r.Promoted.QueryRow(context.Background(), `SELECT status, attempts, locked_until FROM stripe_webhook_deliveries WHERE event_id = $1`, id).
			Scan(&status, &attempts, &locked)
		fmt.Fprintf(&b, "; delivery row: %s, %d attempts, locked until %v (%v)", status, attempts, locked, err)
	}
	return b.String()
}
