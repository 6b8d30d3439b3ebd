// Package redis is the Redis sink: fields set in a Redis hash, counters
// added exactly once per source position (Counters), and the sorting of
// Redis errors into poison and unavailable that every Redis writer of
// runnel shares.
package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/runnel-dev/runnel/internal/sink"
)

// Field is one hash field and its value.
type Field struct {
	Name, Value string
}

// Hash sets fields of one Redis hash with HSET. HSET overwrites, so a
// batch written again leaves the same hash.
type Hash struct {
	Client *goredis.Client
	Key    string
	// Retry is the policy of the writes ("redis ADDR hash KEY").
	Retry *sink.Retry
}

var _ sink.Writer[Field] = (*Hash)(nil)

// NewHash returns a writer of hash key through client.
func NewHash(client *goredis.Client, key string) *Hash {
	return &Hash{Client: client, Key: key, Retry: &sink.Retry{Target: "redis " + client.Options().Addr + " hash " + key}}
}

// Write sets the batch's fields in one round trip, retried while Redis is
// unavailable.
func (h *Hash) Write(ctx context.Context, batch []Field) error {
	if len(batch) == 0 {
		return nil
	}
	values := make([]any, 0, 2*len(batch))
	for _, f := range batch {
		values = append(values, f.Name, f.Value)
	}
	return h.Retry.Do(ctx, func(ctx context.Context) error {
		if err := h.Client.HSet(ctx, h.Key, values...).Err(); err != nil {
			return Classify(fmt.Errorf("redis HSET %s: %w", h.Key, err))
		}
		return nil
	})
}

// Classify marks as poison the errors Redis answers because of what a
// write holds: WRONGTYPE (a key of another type), or an error reply that
// starts with one of poisonPrefixes (a script's own refusals). Every
// other error (no connection, a timeout, LOADING, BUSY, READONLY, OOM,
// ...) says Redis cannot take the write now.
func Classify(err error, poisonPrefixes ...string) error {
	var rerr goredis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		if strings.HasPrefix(msg, "WRONGTYPE") {
			return sink.Poison(err)
		}
		for _, p := range poisonPrefixes {
			if strings.HasPrefix(msg, p) {
				return sink.Poison(err)
			}
		}
	}
	return err
}
