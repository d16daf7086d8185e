package receiver

import (
	"context"

	"github.com/oncehook/oncehook/migrations"
)

// readiness is the /readyz body.
type readiness struct {
	Status   string `json:"status"` // ready, not ready, shutting down
	Postgres string `json:"postgres"`
	Redis    string `json:"redis"`
}

// readiness checks Postgres (reachable and migrated) and Redis. Only
// Postgres decides readiness: without Redis the receiver falls back to it.
func (s *Server) readiness(parent context.Context) readiness {
	st := readiness{Postgres: "ok", Redis: "disabled"}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), readyTimeout)
	defer cancel()
	if v, err := migrations.Current(ctx, s.cfg.Pool); err != nil {
		st.Postgres = "unreachable: " + err.Error()
	} else if latest := migrations.Latest(); v < latest {
		st.Postgres = "not migrated: run `receiver migrate`"
	}
	if s.cfg.Redis != nil {
		st.Redis = "ok"
		if err := s.cfg.Redis.Ping(ctx).Err(); err != nil {
			st.Redis = "down: " + err.Error()
		}
	}
	switch {
	case s.stopping.Load():
		st.Status = "shutting down"
	case st.Postgres != "ok":
		st.Status = "not ready"
	default:
		st.Status = "ready"
	}
	return st
}
