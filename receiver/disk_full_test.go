package receiver_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
)

// The storm of the disk-full tests: the size of the harness that found
// the issue (#19), Stripe-like retries until a 200.
const (
	diskFullEvents      = 3000
	diskFullConcurrency = 16
	// diskFullWindow is how long the disk stays full once the intake
	// answers 503 for it: an intended fault window.
	diskFullWindow = 2 * time.Second
)

// TestPostgresTablespaceFullAnswers503 fills the filesystem of the
// tablespace that holds the ledger mid-storm: Postgres stays up and fails
// each INSERT with 53100 disk_full ("could not extend file"). The intake
// answers 503 (never 4xx, never 200 for what it did not store), and once
// there is room again every event is stored once and delivered, with no
// restart of anything.
func TestPostgresTablespaceFullAnswers503(t *testing.T) {
	t.Parallel()
	fs := testenv.MountTmpfs(t, 32<<20)
	ts := fs.PostgresDir(t, "ts")
	pg := testenv.StartPostgres(t)
	admin := testenv.EmptySchema(t, pg.URL())
	if _, err := admin.Exec(context.Background(), "CREATE TABLESPACE small LOCATION '"+ts+"'"); err != nil {
		t.Fatal(err)
	}
	// The test's schema, its tables and indexes in the small tablespace.
	// The cluster is stopped before the unmount, and deleted.
	pool := testenv.Schema(t, pg.URL()+"&default_tablespace=small")
	fs.Fill(t, 1<<20)

	full := func() bool { return pg.LogHas(t, "could not extend file") }
	st := diskFullStorm(t, pool, "evt_tsfull", full, func() { fs.Free(t) })
	if st.pgErrors["insert/53100"] == 0 {
		t.Errorf("no insert counted with SQLSTATE 53100 in oncehook_postgres_errors_total: %v", st.pgErrors)
	}
	if n := strings.Count(pg.Log(t), "database system is ready to accept connections"); n != 1 {
		t.Errorf("Postgres started %d times; this fault must not crash it", n)
	}
}

// TestPostgresWALFullAnswers503 fills the filesystem of pg_wal mid-storm:
// Postgres cannot create the next WAL segment, PANICs, and stops for good
// when its recovery cannot write either. The intake answers 503 while it
// is down; the test frees room and starts it again, as an operator (or
// systemd, or Patroni) would; oncehook recovers by itself, every event is
// stored once and delivered, and none that got a 200 is missing: Postgres
// runs with synchronous commit, as in production.
func TestPostgresWALFullAnswers503(t *testing.T) {
	t.Parallel()
	fs := testenv.MountTmpfs(t, 40<<20)
	wal := fs.PostgresDir(t, "wal")
	pg := testenv.StartDurablePostgres(t)
	pg.MoveWAL(t, wal)
	pool := testenv.Schema(t, pg.URL())
	// Bring the WAL within about 256 kB of its segment's end, and leave
	// less room than a segment: the storm's first WAL switch fails.
	ctx := context.Background()
	var left, segment int64
	if err := pool.QueryRow(ctx, `SELECT s, (s - (pg_current_wal_lsn() - '0/0') % s)::bigint
		FROM (SELECT setting::bigint AS s FROM pg_settings WHERE name = 'wal_segment_size') w`).Scan(&segment, &left); err != nil {
		t.Fatal(err)
	}
	if segment <= 8<<20 {
		t.Fatalf("WAL segments of %d bytes: this test leaves 8 MiB free and wants that short of a segment", segment)
	}
	if left > 512<<10 {
		if _, err := pool.Exec(ctx, `SELECT pg_logical_emit_message(false, 'oncehook-test-padding', repeat('x', $1))`, left-(256<<10)); err != nil {
			t.Fatal(err)
		}
	}
	fs.Fill(t, 8<<20)

	full := func() bool { return pg.LogHas(t, "PANIC:") }
	st := diskFullStorm(t, pool, "evt_walfull", full, func() {
		fs.Free(t)
		pg.Start(t) // nothing if it is still running (restarting itself)
	})
	if !strings.Contains(pg.Log(t), "No space left on device") {
		t.Errorf("Postgres never logged No space left on device")
	}
	// The answers vary with who hit the full disk: 53100 to the backend
	// that PANICked, if a backend did; 57P02 and no answer at the crash;
	// 57P03 during recovery; none while it is down.
	inserts := 0.0
	for k, v := range st.pgErrors {
		if strings.HasPrefix(k, "insert/") {
			inserts += v
		}
	}
	if inserts == 0 {
		t.Errorf("no failed insert counted in oncehook_postgres_errors_total: %v", st.pgErrors)
	}
}

type diskFullStats struct {
	unavailable    int           // 503s while the disk was full
	afterRoom      int           // 503s once the room was being made, until Postgres took writes again
	firstOK, allOK time.Duration // from the room made to the first 200, and to the last
	twice          int           // events delivered twice
	// oncehook_postgres_errors_total of the instances, summed by op and
	// sqlstate ("insert/53100").
	pgErrors map[string]float64
}

// diskFullStorm sends diskFullEvents signed webhooks, diskFullConcurrency
// at a time, to two instances storing in pool, each retried until it gets
// a 200. Once full reports the disk full and the intake has answered 503,
// the disk stays full for diskFullWindow, then makeRoom runs. It fails
// on any answer but 200 and 503, unless 503s came while the disk was full,
// unless every event is then stored once and delivered, and if an event
// got a 200 but is not stored.
func diskFullStorm(t *testing.T, pool *pgxpool.Pool, prefix string, full func() bool, makeRoom func()) diskFullStats {
	t.Helper()
	rdb, keyPrefix := testenv.Redis(t)
	out := harness.NewRecordingSink()
	var ins []*harness.Instance
	for range 2 {
		ins = append(ins, harness.StartInstance(t, harness.InstanceConfig{Pool: testenv.AnotherPool(t, pool), Redis: rdb, KeyPrefix: keyPrefix,
			RecentIDs: 1000, Sink: out}))
	}

	var (
		mu                 sync.Mutex
		st                 diskFullStats
		answered           = map[string]bool{}
		roomAt, firstAfter time.Time
		roomMade           atomic.Bool
		stormDone          = make(chan struct{})
		trigger            sync.WaitGroup
	)
	start := time.Now()
	trigger.Go(func() {
		filled := eventually.Within(90*time.Second, func() bool {
			select {
			case <-stormDone:
				return true
			default:
			}
			mu.Lock()
			n := st.unavailable
			mu.Unlock()
			return n > 0 && full()
		})
		select {
		case <-stormDone:
			return
		default:
		}
		if !filled {
			t.Errorf("the disk did not fill within 90s")
		}
		time.Sleep(diskFullWindow) // the disk stays full: an intended fault window
		mu.Lock()
		roomAt = time.Now() // from here on, a 503 counts as one of the recovery
		roomMade.Store(true)
		mu.Unlock()
		makeRoom()
	})

	sem := make(chan struct{}, diskFullConcurrency)
	var wg sync.WaitGroup
	for i := range diskFullEvents {
		id := fmt.Sprintf("%s_%04d", prefix, i)
		body := harness.EventBody(id, "invoice.paid")
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			attempt := 0
			ok := eventually.Within(90*time.Second, func() bool {
				resp := harness.Post(t, ins[(i+attempt)%2].URL, body)
				attempt++
				mu.Lock()
				defer mu.Unlock()
				switch {
				case resp.Code == 200 && (resp.Body == `{"status":"accepted","event_id":"`+id+`"}` ||
					resp.Body == `{"status":"duplicate","event_id":"`+id+`"}`):
					answered[id] = true
					if !roomAt.IsZero() && firstAfter.IsZero() {
						firstAfter = time.Now()
					}
					return true
				case resp.Code == 503:
					if roomMade.Load() {
						st.afterRoom++
					} else {
						st.unavailable++
					}
				default:
					t.Errorf("%s: %d %s; want 200 or 503", id, resp.Code, resp.Body)
					return true
				}
				return false
			})
			if !ok {
				t.Errorf("%s: no 200 in 90s", id)
			}
		})
	}
	wg.Wait()
	end := time.Now()
	close(stormDone)
	trigger.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if roomAt.IsZero() {
		t.Fatalf("the storm ended (%d answers of 503) before the disk was full", st.unavailable)
	}
	st.firstOK, st.allOK = firstAfter.Sub(roomAt), end.Sub(roomAt)

	// Every event stored once; none that got a 200 is missing.
	var rows, distinct int
	var missing []string
	ids := make([]string, 0, len(answered))
	for id := range answered {
		ids = append(ids, id)
	}
	if err := pool.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT event_id),
		ARRAY(SELECT x FROM unnest($1::text[]) x WHERE x NOT IN (SELECT event_id FROM stripe_webhook_events))
		FROM stripe_webhook_events`, ids).Scan(&rows, &distinct, &missing); err != nil {
		t.Fatal(err)
	}
	if len(answered) != diskFullEvents || rows != diskFullEvents || distinct != diskFullEvents || len(missing) != 0 {
		t.Fatalf("%d events answered 200, %d rows, %d ids; want %d of each; answered 200 but not stored: %v",
			len(answered), rows, distinct, diskFullEvents, missing)
	}
	counts := out.WaitFor(t, 30*time.Second, func(c map[string]int) bool { return len(c) == diskFullEvents })
	for _, n := range counts {
		if n > 1 {
			st.twice++
		}
	}
	st.pgErrors = map[string]float64{}
	for _, in := range ins {
		fams, err := in.Metrics().Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() != "oncehook_postgres_errors_total" {
				continue
			}
			for _, m := range f.GetMetric() {
				var key []string
				for _, l := range m.GetLabel() {
					key = append(key, l.GetValue()) // op, then sqlstate
				}
				if v := m.GetCounter().GetValue(); v > 0 {
					st.pgErrors[strings.Join(key, "/")] += v
				}
			}
		}
	}
	t.Logf("%d events in %v: %d answers of 503 while the disk was full (for %v), %d more once room was being made; "+
		"first 200 %v after the room, all %v after; %d events delivered twice; Postgres errors by op/sqlstate: %v",
		diskFullEvents, end.Sub(start).Round(time.Millisecond), st.unavailable, diskFullWindow, st.afterRoom,
		st.firstOK.Round(time.Millisecond), st.allOK.Round(time.Millisecond), st.twice, st.pgErrors)
	if st.unavailable == 0 {
		t.Errorf("no 503 while the disk was full")
	}
	return st
}
