package service

import (
	"context"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oncehook/oncehook/internal/redact"
)

// Redis states, as the start line names them.
const (
	redisOff         = "off" // no REDIS_URL: Postgres alone
	redisOK          = "ok"
	redisUnreachable = "unreachable"
)

// redisCheckTries is how many pings checkRedis makes before it calls Redis
// unreachable: each is bounded by REDIS_TIMEOUT, which a first connection's
// dial (TLS, say) may exceed.
const redisCheckTries = 3

// checkRedis pings Redis at start and returns its state for the start
// line. An unreachable Redis is a warning, not an error: events are
// decided through Postgres alone until it answers (each command tries it
// again).
func checkRedis(ctx context.Context, rdb redis.UniversalClient, rawURL string, log *slog.Logger) string {
	if rdb == nil {
		return redisOff
	}
	var err error
	for range redisCheckTries {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = rdb.Ping(pctx).Err()
		cancel()
		if err == nil {
			return redisOK
		}
	}
	args := []any{"error", redact.Error(err, rawURL)}
	if rawURL != "" {
		args = append([]any{"redis_url", redact.URL(rawURL)}, args...)
	}
	log.Warn("REDIS_URL is unreachable at start; deciding events through Postgres alone until it answers", args...)
	return redisUnreachable
}
