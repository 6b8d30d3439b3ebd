package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/consumer"
)

func baseConfig(e *env, stream string, store consumer.LeaseStore, h *recorder) consumer.Config {
	return consumer.Config{
		Application:  "app",
		Stream:       stream,
		Kinesis:      e.c,
		Leases:       store,
		Handler:      h,
		PollInterval: 20 * time.Millisecond,
		TakeInterval: 200 * time.Millisecond,
	}
}

func memStore(t testing.TB) *consumer.MemoryStore {
	s, err := consumer.NewMemoryStore(context.Background(), nil)
	require.NoError(t, err)
	return s
}

func TestWorkerDeliversEveryRecordInOrderPerShard(t *testing.T) {
	e := start(t)
	e.createStream(t, "s", 4)
	want := e.put(t, "s", 2000, 40, "")
	h := &recorder{}
	store := memStore(t)
	w := startWorker(t, baseConfig(e, "s", store, h))
	eventually(t, 20*time.Second, "every record delivered", func() bool { return h.distinct() == len(want) })
	more := e.put(t, "s", 500, 40, "late-")
	want = append(want, more...)
	eventually(t, 20*time.Second, "late records delivered", func() bool { return h.distinct() == len(want) })
	checkInOrder(t, h.deliveries(), want)

	// Every shard's checkpoint reaches its last record.
	eventually(t, 10*time.Second, "checkpoints at the end", func() bool {
		st := w.w.Status()
		if len(st.Shards) != 4 {
			return false
		}
		for _, s := range st.Shards {
			if s.RecordsBehind != 0 || s.State != consumer.ShardRunning {
				return false
			}
		}
		return true
	})
	w.stop(t)
	leases, err := store.ListLeases(context.Background())
	require.NoError(t, err)
	require.Len(t, leases, 4)
	for _, l := range leases {
		require.Empty(t, l.Owner, "released on stop")
		require.False(t, l.Checkpoint.IsSentinel(), "lease %s checkpoint %s", l.Key, l.Checkpoint)
	}
}

func TestConfigValidateReportsEveryField(t *testing.T) {
	cfg := consumer.Config{
		BatchSize:             10001,
		MaximumBatchingWindow: 301 * time.Second,
		StartingPosition:      "SOMEWHERE",
		MaximumRetryAttempts:  intp(-2),
		MaximumRecordAge:      30 * time.Second,
		ParallelizationFactor: 11,
		TumblingWindow:        901 * time.Second,
		RenewInterval:         6 * time.Second,
	}
	err := cfg.Validate()
	require.Error(t, err)
	fields := map[string]bool{}
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *consumer.FieldError
		require.ErrorAs(t, e, &fe)
		fields[fe.Field] = true
	}
	for _, f := range []string{"Application", "Stream", "Kinesis", "Leases", "Handler", "BatchSize", "MaximumBatchingWindow",
		"StartingPosition", "MaximumRetryAttempts", "MaximumRecordAge", "ParallelizationFactor", "TumblingWindow", "RenewInterval"} {
		require.True(t, fields[f], "no error for %s in %v", f, err)
	}
	at := consumer.Config{StartingPosition: consumer.AtTimestamp}
	require.ErrorContains(t, at.Validate(), "StartingTimestamp: required with AT_TIMESTAMP")
	_, err = consumer.NewWorker(cfg)
	require.Error(t, err)
}
