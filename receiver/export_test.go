package receiver

// ReadinessChecks is how many times s has checked Postgres and Redis for
// /readyz.
func (s *Server) ReadinessChecks() int64 { return s.ready.checks.Load() }
