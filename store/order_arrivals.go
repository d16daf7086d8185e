package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// A keyed delivery is stored due and under no lease (InsertEvents). The
// instance that stored it claims its key's head at once by the key
// (ClaimArrivals), without the sweep's look for due deliveries: the
// arrival finds the key free (its head goes), or in flight (the head goes
// to the writer of that delivery's result), or its head backing off (a
// sweep takes it when it is due).

// lockArrivedKeysSQL takes, in hash order (as lockFinishedKeysSQL, so
// that the two never wait on each other), the advisory lock of each key
// ($1 keys, $2 destinations).
const lockArrivedKeysSQL = `
SELECT pg_advisory_xact_lock(1869310329, k.h) FROM (
	SELECT DISTINCT hashtext(r.destination || E'\n' || r.order_key) AS h
	FROM unnest($1::text[], $2::text[]) AS r(order_key, destination)
	ORDER BY h
	OFFSET 0) k`

// claimArrivedSQL leases the due head of each key ($1 keys, $2
// destinations) to the caller, under the keys' locks.
// $3 lease ms, $4 false.
const claimArrivedSQL = `
WITH keyed AS (
	SELECT DISTINCT r.destination, r.order_key FROM unnest($1::text[], $2::text[]) AS r(order_key, destination)),
` + leaseKeyHeads

// ClaimArrivals leases to the caller, for lease, the head of each order
// key of destination whose deliveries were just stored, by the claim's
// rule: only a due head, and only while no delivery of its key is under a
// live lease. The caller delivers them, or gives them back (GiveBack).
func (s *Store) ClaimArrivals(ctx context.Context, destination string, keys []string, lease time.Duration) ([]Next, error) {
	if lease <= 0 {
		return nil, errors.New("claiming arrived order keys: the deliveries need a lease")
	}
	if len(keys) == 0 {
		return nil, nil
	}
	dests := make([]string, len(keys))
	for i := range dests {
		dests[i] = destination
	}
	next, err := s.leaseHeads(ctx, lockArrivedKeysSQL, claimArrivedSQL, keys, dests, lease, false)
	if err != nil {
		return nil, fmt.Errorf("claiming the heads of %d arrived order keys at %s: %w", len(keys), destination, err)
	}
	return next, nil
}
