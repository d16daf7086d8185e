package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/oncehook/oncehook/internal/ratelog"
	"github.com/oncehook/oncehook/internal/redact"
	"github.com/oncehook/oncehook/internal/safetext"
)

// redisLogMaxBytes bounds one go-redis message in the log.
const redisLogMaxBytes = 1000

// redisLog carries go-redis's own messages (a pool that cannot dial, say)
// into serve's log. Left alone, go-redis prints them to stderr as plain
// text among the JSON lines. They are WARN, at most one per
// ratelog.Interval (the pool reports every failed dial), with the Redis
// URLs' credentials redacted and the text made safe.
type redisLog struct {
	warn *ratelog.Logger
	urls []string // REDIS_URL and the destinations' URLs, as set
}

func (l *redisLog) Printf(_ context.Context, format string, v ...any) {
	msg := redact.String(fmt.Sprintf(format, v...), l.urls...)
	l.warn.Warn("redis client", "detail", safetext.Clean(msg, redisLogMaxBytes))
}

// routeRedisLog sends go-redis's messages to log; c names the URLs whose
// credentials they might carry.
func routeRedisLog(c config, log *slog.Logger) {
	urls := []string{c.RedisURL}
	for _, d := range c.Destinations {
		urls = append(urls, os.Getenv(d.URLVar))
	}
	redis.SetLogger(&redisLog{warn: &ratelog.Logger{Log: log}, urls: urls})
}
