package service_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/service"
	"github.com/oncehook/oncehook/internal/startstop"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/receiver"
	"github.com/oncehook/oncehook/route"
)

// closingSink counts its Close calls.
type closingSink struct {
	*harness.RecordingSink
	closed atomic.Int32
}

func (s *closingSink) Close() error { s.closed.Add(1); return nil }

func newService(t *testing.T, out *closingSink) *service.Service {
	t.Helper()
	svc, err := service.New(context.Background(), service.Config{ListenAddr: "127.0.0.1:0", Secrets: []string{harness.Secret}, Tolerance: time.Minute},
		service.WithPool(testenv.Postgres(t)), service.WithRedis(nil),
		service.WithDestinations([]delivery.Destination{{Name: route.DefaultName, Sink: out}}),
		service.WithDelivery(func(c *delivery.DispatcherConfig) { c.FlushInterval = 5 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// TestLifecycle: Start twice starts once, Stop drains and closes the sinks
// once, a second Stop does nothing, and a stopped Service does not start.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	out := &closingSink{RecordingSink: harness.NewRecordingSink()}
	svc := newService(t, out)
	ctx := context.Background()
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	url := "http://" + svc.Addr() + receiver.WebhookPath
	if resp := harness.Post(t, url, harness.EventBody("evt_lifecycle", "invoice.paid")); resp.Code != 200 {
		t.Fatalf("%d %s", resp.Code, resp.Body)
	}
	out.WaitFor(t, 10*time.Second, func(c map[string]int) bool { return c["evt_lifecycle"] == 1 })
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := svc.Stop(sctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := svc.Stop(sctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if n := out.closed.Load(); n != 1 {
		t.Errorf("the sink was closed %d times, want 1", n)
	}
	if err := svc.Start(ctx); !errors.Is(err, startstop.ErrStopped) {
		t.Errorf("Start after Stop: %v, want ErrStopped", err)
	}
}

// TestStopBeforeStart releases the sinks New took, and starts nothing.
func TestStopBeforeStart(t *testing.T) {
	t.Parallel()
	out := &closingSink{RecordingSink: harness.NewRecordingSink()}
	svc := newService(t, out)
	for range 2 {
		if err := svc.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := out.closed.Load(); n != 1 {
		t.Errorf("the sink was closed %d times, want 1", n)
	}
	if err := svc.Start(context.Background()); !errors.Is(err, startstop.ErrStopped) {
		t.Errorf("Start after Stop: %v, want ErrStopped", err)
	}
}
