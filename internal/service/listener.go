package service

import (
	"context"
	"net"

	"github.com/oncehook/oncehook/internal/startstop"
	"github.com/oncehook/oncehook/receiver"
)

// listener is the webhook listener: it serves the receiver on the
// LISTEN_ADDR listener New bound.
type listener struct {
	srv    *receiver.Server
	ln     net.Listener
	bound  string // the address it listens on
	failed chan error
	done   chan struct{} // closed when Serve has returned
	state  startstop.State
}

func newListener(srv *receiver.Server, ln net.Listener) *listener {
	return &listener{srv: srv, ln: ln, bound: ln.Addr().String(), failed: make(chan error, 1), done: make(chan struct{})}
}

// Start serves in the background; what Serve returns goes to failed. A
// second Start does nothing.
func (l *listener) Start(ctx context.Context) error {
	return l.state.Start(ctx, func(context.Context) error {
		go func() {
			defer close(l.done)
			l.failed <- l.srv.Serve(l.ln)
		}()
		return nil
	})
}

// Stop fails /readyz, closes the listener and waits for in-flight requests
// to finish (each is answered only once its outcome is known), until ctx
// ends. Stop before Start and a second Stop do nothing.
func (l *listener) Stop(ctx context.Context) error {
	return l.state.Stop(ctx, func(ctx context.Context) error {
		err := l.srv.Shutdown(ctx)
		// Shutdown closes only the listeners Serve has taken: a Stop soon
		// after Start may come first, and Serve would then serve on, and
		// Stop wait for it, for good.
		_ = l.ln.Close()
		if err != nil {
			return err
		}
		return startstop.Wait(ctx, l.done)
	})
}
