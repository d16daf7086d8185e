package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
)

// TestSIGKILLDuringStormOrdered kills one of two receivers (the real
// binary) mid-storm, with a destination ordered by data.object.id: every
// event of the storm is of one object, so every delivery waits for its
// key. The killed instance dies holding deliveries it stored and had not
// yet decided, and with one in flight; once its leases end, the survivor
// delivers them and the rest of the key: every event answered 200 is in a
// file, and only the one the killed instance had in flight may be there
// twice, once in each instance's file. (That one may have been accepted
// by either: the instance that finishes a key's delivery goes on with the
// key's next one, whoever stored it.)
func TestSIGKILLDuringStormOrdered(t *testing.T) {
	t.Parallel()
	pool, dbURL := testDB(t)
	dir := t.TempDir()
	files := []string{filepath.Join(dir, "victim.jsonl"), filepath.Join(dir, "survivor.jsonl")}
	env := func(file string) []string {
		return []string{
			"STRIPE_WEBHOOK_SECRET=" + harness.Secret,
			"DELIVERY_TIMEOUT=1s", "DELIVERY_LEASE=11s", "LOG_LEVEL=warn",
			"DESTINATIONS=archive", "DESTINATION_ARCHIVE_URL=file://" + file,
			"DESTINATION_ARCHIVE_ORDER_KEY=data.object.id",
		}
	}
	addrs := []string{testenv.FreeAddr(t), testenv.FreeAddr(t)}
	victim := startProcess(t, addrs[0], dbURL, env(files[0])...)
	startProcess(t, addrs[1], dbURL, env(files[1])...)

	answered, victimAccepts := killMidStorm(t, victim, addrs, "evt_killorder", 600, 6)

	pending := -1
	eventually.Require(t, 60*time.Second, "every delivery to be done", func() bool {
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM stripe_webhook_deliveries WHERE status <> 'delivered'`).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		return pending == 0
	}, func() string { return fmt.Sprintf("%d deliveries not delivered", pending) })

	got := map[string]int{}
	byVictim := map[string]int{}
	for i, f := range files {
		fh, err := os.Open(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line struct{ ID string }
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				t.Fatalf("%s: a line that is not JSON: %q", f, sc.Text())
			}
			got[line.ID]++
			if i == 0 {
				byVictim[line.ID]++
			}
		}
		fh.Close()
	}
	missing, twice := 0, 0
	for id := range answered {
		switch n := got[id]; {
		case n == 0:
			missing++
		case n > 1:
			twice++
			if n != 2 || byVictim[id] != 1 {
				t.Errorf("%s is there %d times, %d of them from the killed instance; want one from each", id, n, byVictim[id])
			}
		}
	}
	if twice > 1 {
		t.Errorf("%d events there twice: only the one in flight at the kill may be", twice)
	}
	if missing > 0 {
		t.Errorf("%d of %d events answered 200 are missing", missing, len(answered))
	}
	t.Logf("%d events answered 200, %d missing, %d twice; the killed instance accepted %d", len(answered), missing, twice, len(victimAccepts))
}
