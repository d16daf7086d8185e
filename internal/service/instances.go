package service

import (
	"context"
	"slices"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/admin"
	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/store"
)

// liveInstances counts, from the destination record, the live instances
// that serve a destination, self included even before its record is
// written: without Redis, a destination's rate is split by that count.
func liveInstances(pool *pgxpool.Pool, self string) func(ctx context.Context, destination string) (int, error) {
	ops := admin.New(store.New(pool))
	return func(ctx context.Context, destination string) (int, error) {
		rec, err := ops.Record(ctx)
		if err != nil {
			return 0, err
		}
		n, counted := 0, false
		for _, in := range rec.Live {
			if slices.ContainsFunc(in.Destinations, func(d route.Destination) bool { return d.Name == destination }) {
				n++
				counted = counted || in.Instance == self
			}
		}
		if !counted {
			n++
		}
		return n, nil
	}
}

// rateKeyPrefix is the Redis key prefix of the destinations' schedules:
// REDIS_KEY_PREFIX, else the deduper's default, bound to the database's
// namespace. Empty when no destination has a rate.
func rateKeyPrefix(ctx context.Context, cfg Config, pool *pgxpool.Pool, dests []delivery.Destination) (string, error) {
	rated := slices.ContainsFunc(dests, func(d delivery.Destination) bool { return !d.Rate.IsZero() })
	if !rated || cfg.RedisKeyPrefix != "" {
		return cfg.RedisKeyPrefix, nil
	}
	ns, err := store.New(pool).Namespace(ctx)
	if err != nil {
		return "", err
	}
	return dedup.KeyPrefixFor(ns), nil
}
