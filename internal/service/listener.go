package service

import (
	"context"
	"fmt"
	"net"

	"github.com/oncehook/oncehook/internal/startstop"
	"github.com/oncehook/oncehook/receiver"
)

// listener is the webhook listener: it serves the receiver on ADDR.
type listener struct {
	srv    *receiver.Server
	addr   string // LISTEN_ADDR
	bound  string // the address it listens on, once started
	failed chan error
	done   chan struct{} // closed when Serve has returned
	state  startstop.State
}

func newListener(srv *receiver.Server, addr string) *listener {
	return &listener{srv: srv, addr: addr, failed: make(chan error, 1), done: make(chan struct{})}
}

// Start listens on the address and serves in the background; what Serve
// returns goes to failed. A second Start does nothing.
func (l *listener) Start(ctx context.Context) error {
	return l.state.Start(ctx, func(context.Context) error {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			return fmt.Errorf("LISTEN_ADDR: %w", err)
		}
		l.bound = ln.Addr().String()
		go func() {
			defer close(l.done)
			l.failed <- l.srv.Serve(ln)
		}()
		return nil
	})
}

// Stop fails /readyz, closes the listener and waits for in-flight requests
// to finish (each is answered only once its outcome is known), until ctx
// ends. Stop before Start and a second Stop do nothing.
func (l *listener) Stop(ctx context.Context) error {
	return l.state.Stop(ctx, func(ctx context.Context) error {
		if err := l.srv.Shutdown(ctx); err != nil {
			return err
		}
		return startstop.Wait(ctx, l.done)
	})
}
