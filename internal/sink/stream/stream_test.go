package stream_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/producer"
	"github.com/runnel-dev/runnel/internal/producer/producertest"
	"github.com/runnel-dev/runnel/internal/sink"
	"github.com/runnel-dev/runnel/internal/sink/stream"
)

// TestWriter: records are put in order per key; a record Kinesis refuses
// whatever the retries is poison (the others still put); a stream that
// does not exist is unavailable, not poison.
func TestWriter(t *testing.T) {
	t.Parallel()
	srv := kinesistest.Start(t)
	c := srv.Client(t)
	producertest.CreateStream(t, c, "out", 2)
	w := &stream.Writer{API: c, Stream: "out"}
	ctx := context.Background()

	var recs []producer.Record
	want := map[string]string{}
	for i := range 40 {
		k, d := []string{"a", "b", "c"}[i%3], string(rune('0'+i%10))
		recs = append(recs, producer.Record{PartitionKey: k, Data: []byte(d)})
		want[k] += d
	}
	require.NoError(t, w.Write(ctx, recs))
	got := producertest.ReadAll(t, c, "out")
	require.Len(t, got, 40)
	perKey := map[string]string{}
	for _, r := range got {
		perKey[*r.PartitionKey] += string(r.Data)
	}
	require.Equal(t, want, perKey, "each key in order")

	bad := []producer.Record{{PartitionKey: "a", Data: []byte("x")}, {PartitionKey: strings.Repeat("k", 257), Data: []byte("y")}}
	poison, _, err := w.Put(ctx, bad)
	require.NoError(t, err)
	require.Len(t, poison, 1)
	require.Contains(t, poison, 1)
	err = w.Write(ctx, bad)
	require.True(t, sink.IsPoison(err), "%v", err)
	require.ErrorContains(t, err, "record 2 of 2")

	missing := &stream.Writer{API: c, Stream: "nowhere", Producer: func(pc *producer.Config) {
		pc.BaseBackoff, pc.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	}}
	short, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = missing.Write(short, []producer.Record{{PartitionKey: "a", Data: []byte("z")}})
	require.ErrorIs(t, err, sink.ErrUnavailable, "not poison: the stream may be created")
	require.ErrorContains(t, err, "stream nowhere")
}
