package sink

import (
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/oncehook/oncehook/event"
)

// RedisStream is a Sink that XADDs each event to a stream with fields id,
// type and payload, trimming the stream to about MaxLen entries.
type RedisStream struct {
	rdb       redis.UniversalClient
	stream    string
	maxLen    int64
	closeOnce sync.Once
	closeErr  error
}

// NewRedisStream returns a stream sink; it owns rdb and closes it on Close.
func NewRedisStream(rdb redis.UniversalClient, stream string, maxLen int64) *RedisStream {
	return &RedisStream{rdb: rdb, stream: stream, maxLen: maxLen}
}

// Deliver appends ev to the stream.
func (s *RedisStream) Deliver(ctx context.Context, ev *event.Event) error {
	err := s.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: s.stream,
		MaxLen: s.maxLen,
		Approx: true,
		Values: []any{"id", ev.ID, "type", ev.Type, "payload", ev.Payload},
	}).Err()
	if err != nil {
		return fmt.Errorf("XADD %s to %s: %w", ev.ID, s.stream, err)
	}
	return nil
}

// Close closes the client.
func (s *RedisStream) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.rdb.Close() })
	return s.closeErr
}
