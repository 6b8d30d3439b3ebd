package stream

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/runneltest"
)

// A data directory written without scopes opens with MultiRegion as it
// was: its streams are the engine's own account and region, under their
// plain names and ARNs. Streams of other scopes live beside them under
// qualified names, survive a restart, and count against their own shard
// limit.
func TestScopesKeepOldDataDirs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(t.Context(), Config{Dir: dir, NoSync: true})
	require.NoError(t, err)
	require.NoError(t, s.CreateStream(ctx, "s", 1, CreateOptions{}))
	_, err = s.Put(ctx, "s", []PutInput{{PartitionKey: "k", Data: []byte("old")}})
	require.NoError(t, err)
	_, err = s.NameFromARN("arn:aws:kinesis:us-west-2:000000000000:stream/s")
	require.ErrorIs(t, err, ErrNotFound, "other regions are refused without MultiRegion")
	require.NoError(t, s.Close())

	cfg := Config{Dir: dir, NoSync: true, MultiRegion: true, ShardLimit: 3}
	s, err = Open(t.Context(), cfg)
	require.NoError(t, err)
	name, err := s.NameFromARN("arn:aws:kinesis:us-east-1:000000000000:stream/s")
	require.NoError(t, err)
	require.Equal(t, "s", name)
	require.Equal(t, "s", s.Qualify("us-east-1", "000000000000", "s"))
	recs := readAll(t, s, "s", "shardId-000000000000", IteratorSpec{Type: TrimHorizon})
	require.Len(t, recs, 1)
	require.Equal(t, "old", string(recs[0].Data))

	west := s.Qualify("us-west-2", "", "s")
	other := s.Qualify("", "111111111111", "s")
	require.Equal(t, "us-west-2/000000000000/s", west)
	require.NoError(t, s.CreateStream(ctx, west, 3, CreateOptions{}), "the shard limit is per account and region")
	require.NoError(t, s.CreateStream(ctx, other, 1, CreateOptions{}))
	require.ErrorIs(t, s.CreateStream(ctx, s.Qualify("us-west-2", "", "t"), 1, CreateOptions{}), ErrLimitExceeded)
	name, err = s.NameFromARN("arn:aws:kinesis:us-west-2:000000000000:stream/s")
	require.NoError(t, err)
	require.Equal(t, west, name)
	_, err = s.NameFromARN("arn:aws:kinesis:us-east-1:000000000000:stream/us-west-2/000000000000/s")
	require.ErrorIs(t, err, ErrNotFound, "a qualified name is no stream name")
	require.Equal(t, "arn:aws:kinesis:us-east-1:111111111111:stream/s", s.ARN(other))
	d, err := s.Describe(west)
	require.NoError(t, err)
	require.Equal(t, "s", d.Name)
	require.Equal(t, 3, d.OpenShardCount)
	require.NoError(t, s.Close())

	s, err = Open(t.Context(), cfg)
	require.NoError(t, err)
	defer s.Close()
	var names []string
	for _, sum := range s.List() {
		names = append(names, sum.Name)
	}
	require.Equal(t, []string{"s", "us-east-1/111111111111/s", "us-west-2/000000000000/s"}, names)
	d, err = s.Describe("s")
	require.NoError(t, err)
	require.Equal(t, 1, d.OpenShardCount)
}

// Log lines name a stream as users do: its plain name, with its region
// and account when they are not the engine's own.
func TestLogNamesStreamsAsUsersDo(t *testing.T) {
	t.Parallel()
	var buf runneltest.SyncBuffer
	s, err := Open(t.Context(), Config{InMemory: true, MultiRegion: true, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	require.NoError(t, s.CreateStream(ctx, "own", 1, CreateOptions{}))
	require.NoError(t, s.CreateStream(ctx, s.Qualify("us-west-2", "222222222222", "orders"), 1, CreateOptions{}))
	_, err = s.RegisterConsumer(ctx, s.Qualify("us-west-2", "222222222222", "orders"), "c", 0)
	require.NoError(t, err)
	logs := buf.String()
	require.Contains(t, logs, `msg="stream created" stream=own shards=1`)
	require.Contains(t, logs, `msg="stream created" stream="orders (us-west-2, account 222222222222)" shards=1`)
	require.Contains(t, logs, `msg="consumer registered" stream="orders (us-west-2, account 222222222222)" consumer=c`)
	require.NotContains(t, logs, "us-west-2/222222222222/orders")
}
