package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/oncehook/oncehook/route"
)

// The destination set of record: what each running instance serves
// (oncehook_instance_destinations). An instance records its set when it
// starts, refreshes its heartbeat while it runs and forgets it when it
// stops; readers count an instance as live while its heartbeat is recent.

// InstanceDestination is one destination one instance serves.
type InstanceDestination struct {
	Instance    string
	Destination route.Destination
	// Fingerprint identifies the instance's whole set (SetFingerprint).
	Fingerprint string
	StartedAt   time.Time
	HeartbeatAt time.Time
	// Live is set when the heartbeat is recent (within the bound the
	// reader gave), by the database's clock.
	Live bool
}

// SetFingerprint identifies a destination set by its names and filters,
// whatever their order: two instances that route alike have the same one.
func SetFingerprint(set []route.Destination) string {
	lines := make([]string, len(set))
	for i, d := range set {
		types := slices.Clone(d.Filter.Types)
		slices.Sort(types)
		if slices.Contains(types, "*") {
			types = nil // every type
		}
		lines[i] = d.Name + "|" + strings.Join(types, ",") + "|" + string(livemodeOf(d.Filter.Livemode))
	}
	slices.Sort(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(sum[:6])
}

// livemodeOf is a filter's livemode with "" read as both.
func livemodeOf(l route.Livemode) route.Livemode {
	if l == "" {
		return route.Both
	}
	return l
}

// RecordDestinations replaces instance's recorded set with set, with a
// fresh heartbeat, in one transaction.
func (s *Store) RecordDestinations(ctx context.Context, instance string, set []route.Destination) error {
	fp := SetFingerprint(set)
	names := make([]string, len(set))
	types := make([][]string, len(set))
	modes := make([]*bool, len(set))
	for i, d := range set {
		names[i] = d.Name
		types[i] = d.Filter.Types
		if types[i] == nil || slices.Contains(types[i], "*") {
			types[i] = []string{}
		}
		modes[i] = d.Filter.LivemodeSQL()
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM oncehook_instance_destinations WHERE instance = $1`, instance); err != nil {
			return err
		}
		// One row per destination; types is an array per row, so rows are
		// sent as a batch rather than through unnest (no arrays of arrays).
		b := &pgx.Batch{}
		for i := range set {
			b.Queue(`INSERT INTO oncehook_instance_destinations (instance, destination, types, livemode, fingerprint)
				VALUES ($1, $2, $3, $4, $5)`, instance, names[i], types[i], modes[i], fp)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("recording the destinations of %s: %w", instance, err)
	}
	return nil
}

// HeartbeatDestinations refreshes instance's heartbeat and returns how
// many rows it has: 0 means its set is no longer recorded (record it
// again).
func (s *Store) HeartbeatDestinations(ctx context.Context, instance string) (int64, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE oncehook_instance_destinations SET heartbeat_at = now() WHERE instance = $1`, instance)
	if err != nil {
		return 0, fmt.Errorf("refreshing the heartbeat of %s: %w", instance, err)
	}
	return tag.RowsAffected(), nil
}

// ForgetInstance removes instance's recorded set.
func (s *Store) ForgetInstance(ctx context.Context, instance string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM oncehook_instance_destinations WHERE instance = $1`, instance); err != nil {
		return fmt.Errorf("removing the destinations of %s: %w", instance, err)
	}
	return nil
}

// PruneInstances removes the sets whose heartbeat is older than age:
// instances that crashed long ago. It returns how many rows it removed.
func (s *Store) PruneInstances(ctx context.Context, age time.Duration) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM oncehook_instance_destinations WHERE heartbeat_at < now() - $1::interval`, age)
	if err != nil {
		return 0, fmt.Errorf("removing the destinations of instances gone: %w", err)
	}
	return tag.RowsAffected(), nil
}

// InstanceDestinations returns every recorded row, by instance and
// destination, with Live set for a heartbeat within liveWithin.
func (s *Store) InstanceDestinations(ctx context.Context, liveWithin time.Duration) ([]InstanceDestination, error) {
	rows, err := s.pool.Query(ctx, `SELECT instance, destination, types, livemode, fingerprint, started_at, heartbeat_at,
			heartbeat_at > now() - $1::interval
		FROM oncehook_instance_destinations ORDER BY instance, destination`, liveWithin)
	if err != nil {
		return nil, fmt.Errorf("reading the instances' destinations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (InstanceDestination, error) {
		var d InstanceDestination
		var live *bool
		err := r.Scan(&d.Instance, &d.Destination.Name, &d.Destination.Filter.Types, &live, &d.Fingerprint,
			&d.StartedAt, &d.HeartbeatAt, &d.Live)
		if len(d.Destination.Filter.Types) == 0 {
			d.Destination.Filter.Types = nil
		}
		switch {
		case live == nil:
			d.Destination.Filter.Livemode = route.Both
		case *live:
			d.Destination.Filter.Livemode = route.Live
		default:
			d.Destination.Filter.Livemode = route.Test
		}
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the instances' destinations: %w", err)
	}
	return out, nil
}
