package pipeline

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/lambda"
)

type recordingObserver struct {
	mu  sync.Mutex
	got []Invocation
}

func (o *recordingObserver) Invoked(_ string, inv Invocation) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, inv)
}

type flakyHandler struct{ fails int }

func (h *flakyHandler) Invoke(_ context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
	if h.fails > 0 {
		h.fails--
		return nil, errors.New("boom")
	}
	return nil, nil
}

func TestObservedCountsRetries(t *testing.T) {
	obs := &recordingObserver{}
	h := observe("p", &flakyHandler{fails: 1}, obs)
	batch := func(ids ...string) *lambda.KinesisEvent {
		ev := &lambda.KinesisEvent{}
		for _, id := range ids {
			ev.Records = append(ev.Records, lambda.KinesisEventRecord{EventID: "shardId-000000000001:" + id})
		}
		return ev
	}
	_, err := h.Invoke(t.Context(), batch("1", "2", "3"))
	require.Error(t, err)
	_, err = h.Invoke(t.Context(), batch("1", "2", "3")) // the retry
	require.NoError(t, err)
	_, err = h.Invoke(t.Context(), batch("4", "5")) // new records
	require.NoError(t, err)

	require.Len(t, obs.got, 3)
	require.Equal(t, Invocation{Shard: "shardId-000000000001", Records: 3, Failed: true}, zeroDuration(obs.got[0]))
	require.Equal(t, Invocation{Shard: "shardId-000000000001", Records: 3, Retry: true}, zeroDuration(obs.got[1]))
	require.Equal(t, Invocation{Shard: "shardId-000000000001", Records: 2}, zeroDuration(obs.got[2]))
	require.Empty(t, h.failed, "records delivered again successfully are forgotten")
}

func zeroDuration(inv Invocation) Invocation { inv.Duration = 0; return inv }
