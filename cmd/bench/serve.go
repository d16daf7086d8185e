package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"

	"github.com/oncehook/oncehook/bench"
)

// sinkCmd serves the counting sink until ctx ends.
func sinkCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench sink", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8099", "listen address")
	maxMB := fs.Int("max-mb", 256, "bound on the per-event counters (1 byte per event), in MiB")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s := bench.NewSinkServer(bench.SinkConfig{MaxBytes: *maxMB << 20})
	return serve(ctx, "sink", *addr, s.Serve, s.Shutdown)
}

// floorCmd serves the floor until ctx ends.
func floorCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench floor", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8098", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s := bench.NewFloorServer()
	return serve(ctx, "floor", *addr, s.Serve, s.Shutdown)
}

func serve(ctx context.Context, what, addr string, serveFn func(net.Listener) error, shutdown func() error) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	fmt.Fprintf(os.Stderr, "bench %s listening on http://%s/\n", what, ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- serveFn(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return shutdown()
	}
}
