package service

import (
	"fmt"
	"net"
	"strings"
)

// listeners are the addresses New binds first, before it waits for
// Postgres or migrates: an address taken by another process is reported
// before anything is changed.
type listeners struct {
	webhook net.Listener // LISTEN_ADDR
	admin   net.Listener // ADMIN_ADDR; nil when it is empty
}

// BindError is every listen address that could not be bound, each with
// the variable that set it.
type BindError struct {
	Addrs []AddrError
}

// AddrError is one listen address that could not be bound.
type AddrError struct {
	Var  string // LISTEN_ADDR or ADMIN_ADDR
	Addr string
	Err  error
}

func (e *BindError) Error() string {
	parts := make([]string, len(e.Addrs))
	for i, a := range e.Addrs {
		parts[i] = fmt.Sprintf("%s=%s: %v", a.Var, a.Addr, a.Err)
	}
	return "cannot listen (nothing was migrated): " + strings.Join(parts, "; ")
}

// Unwrap gives each address's error, for errors.Is(err, syscall.EADDRINUSE).
func (e *BindError) Unwrap() []error {
	errs := make([]error, len(e.Addrs))
	for i, a := range e.Addrs {
		errs[i] = a.Err
	}
	return errs
}

// bind binds the webhook and admin addresses, trying both, so that one
// error names every address that is taken.
func bind(c Config) (listeners, error) {
	var ls listeners
	var bindErr BindError
	listen := func(name, addr string) net.Listener {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			bindErr.Addrs = append(bindErr.Addrs, AddrError{Var: name, Addr: addr, Err: err})
		}
		return ln
	}
	ls.webhook = listen("LISTEN_ADDR", c.ListenAddr)
	if c.AdminAddr != "" {
		ls.admin = listen("ADMIN_ADDR", c.AdminAddr)
	}
	if len(bindErr.Addrs) > 0 {
		ls.close()
		return listeners{}, &bindErr
	}
	return ls, nil
}

// close closes the listeners that no server took over; closing one a
// server already closed does nothing.
func (ls listeners) close() {
	for _, ln := range []net.Listener{ls.webhook, ls.admin} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}
