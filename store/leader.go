package store

import (
	"context"
	"time"
)

// TryLead takes the session advisory lock named key, on a connection of
// its own, if no other session holds it. When ok, the caller leads until
// it calls release, which unlocks and returns the connection; release
// must be called. An advisory lock keeps the leader to one session across
// every instance; a lease row could replace it on an engine without
// advisory locks.
func (s *Store) TryLead(ctx context.Context, key string) (release func(), ok bool, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, false, err
	}
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext($1))`, key).Scan(&ok); err != nil || !ok {
		conn.Release()
		return nil, false, err
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtext($1))`, key); err != nil {
			// The lock would outlive the run on a pooled connection.
			conn.Conn().Close(ctx)
		}
		conn.Release()
	}, true, nil
}
