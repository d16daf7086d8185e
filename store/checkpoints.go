package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Checkpoint returns the reconciler's checkpoint for listing: every event
// Stripe created before it has been listed and stored. ok is false when
// listing has none yet.
func (s *Store) Checkpoint(ctx context.Context, listing string) (through time.Time, ok bool, err error) {
	err = s.pool.QueryRow(ctx, `SELECT listed_through FROM stripe_webhook_reconcile_checkpoints WHERE listing = $1`, listing).Scan(&through)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("reading the reconcile checkpoint: %w", err)
	}
	return through, true, nil
}

// CheckpointSave is one run's claim to move a checkpoint.
type CheckpointSave struct {
	Listing string
	// Since and Through bound the window the run listed and stored.
	Since, Through time.Time
	// Joins is true when nothing before Since can be listed any more, so
	// the window joins the checkpoint whatever lies between.
	Joins bool
	// First allows a first checkpoint for Listing.
	First bool
}

// SaveCheckpoint moves the checkpoint to c.Through, never back, and only
// when the window reaches it (c.Since at or before it, or c.Joins); with
// no checkpoint yet it writes one when c.First. It reports whether the
// checkpoint is now at c.Through or later because of this call.
func (s *Store) SaveCheckpoint(ctx context.Context, c CheckpointSave) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE stripe_webhook_reconcile_checkpoints
		SET listed_through = GREATEST(listed_through, $2), updated_at = now()
		WHERE listing = $1 AND ($4 OR listed_through >= $3)`, c.Listing, c.Through, c.Since, c.Joins)
	if err != nil {
		return false, fmt.Errorf("saving the reconcile checkpoint: %w", err)
	}
	if tag.RowsAffected() == 1 || !c.First {
		return tag.RowsAffected() == 1, nil
	}
	tag, err = s.pool.Exec(ctx, `INSERT INTO stripe_webhook_reconcile_checkpoints (listing, listed_through)
		VALUES ($1, $2) ON CONFLICT (listing) DO NOTHING`, c.Listing, c.Through)
	if err != nil {
		return false, fmt.Errorf("saving the reconcile checkpoint: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// CheckpointMovedWithin reports whether listing's checkpoint moved less
// than d ago.
func (s *Store) CheckpointMovedWithin(ctx context.Context, listing string, d time.Duration) (bool, error) {
	var recent bool
	err := s.pool.QueryRow(ctx, `SELECT COALESCE((SELECT now() - updated_at < $2::bigint * interval '1 millisecond'
		FROM stripe_webhook_reconcile_checkpoints WHERE listing = $1), false)`, listing, d.Milliseconds()).Scan(&recent)
	return recent, err
}
