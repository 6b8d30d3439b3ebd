package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/stream"
)

// openStream starts a long-lived response (a subscription or a dashboard
// tail) and returns a channel closed when its body ends. ready is a line
// the body sends once the stream is in place.
func openStream(t *testing.T, req *http.Request, ready string) <-chan struct{} {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var seen []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(seen, []byte(ready)) {
		n, err := resp.Body.Read(buf)
		seen = append(seen, buf[:n]...)
		require.True(t, err == nil || n > 0, "stream ended before %q: %v", ready, err)
	}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
	}()
	return ended
}

// TestShutdownUnderLoad shuts the server down while clients put as fast as
// they can and subscriptions and dashboard tails are open: it finishes
// well within its timeout, without a panic, and every acknowledged record
// is stored once, where it was acknowledged.
func TestShutdownUnderLoad(t *testing.T) {
	cfg := Defaults()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.ShutdownTimeout = 5 * time.Second
	s, err := New(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	client := kinesis.New(kinesis.Options{
		BaseEndpoint: aws.String(s.URL()), Region: "us-east-1", Retryer: aws.NopRetryer{},
		Credentials: credentials.NewStaticCredentialsProvider("runnel", "runnel", ""),
	})
	_, err = client.CreateStream(t.Context(), &kinesis.CreateStreamInput{StreamName: aws.String("load"), ShardCount: aws.Int32(2)})
	require.NoError(t, err)
	desc, err := client.DescribeStreamSummary(t.Context(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("load")})
	require.NoError(t, err)
	cons, err := client.RegisterStreamConsumer(t.Context(), &kinesis.RegisterStreamConsumerInput{
		StreamARN: desc.StreamDescriptionSummary.StreamARN, ConsumerName: aws.String("c"),
	})
	require.NoError(t, err)

	var ended []<-chan struct{}
	for _, shard := range []string{"shardId-000000000000", "shardId-000000000001"} {
		body := fmt.Sprintf(`{"ConsumerARN":%q,"ShardId":%q,"StartingPosition":{"Type":"LATEST"}}`, *cons.Consumer.ConsumerARN, shard)
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL(), strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Amz-Target", "Kinesis_20131202.SubscribeToShard")
		ended = append(ended, openStream(t, req, "initial-response"))
	}
	for range 2 {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL()+"/api/streams/load/tail", nil)
		require.NoError(t, err)
		ended = append(ended, openStream(t, req, "event: ready"))
	}

	type rec struct{ shard, seq string }
	var mu sync.Mutex
	acked := map[string]rec{}
	var ackedN atomic.Int64
	var wg sync.WaitGroup
	stopped := make(chan struct{}) // closed once Run has returned
	putDeadline := time.Now().Add(time.Minute)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; time.Now().Before(putDeadline); i++ {
				var entries []types.PutRecordsRequestEntry
				for j := range 20 {
					entries = append(entries, types.PutRecordsRequestEntry{
						PartitionKey: aws.String(fmt.Sprint(j)), Data: fmt.Appendf(nil, "w%d-%d-%d", w, i, j),
					})
				}
				out, err := client.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("load"), Records: entries})
				if err != nil {
					select {
					case <-stopped:
						return
					default:
						continue // refused while shutting down
					}
				}
				mu.Lock()
				for k, r := range out.Records {
					if r.ErrorCode == nil {
						acked[string(entries[k].Data)] = rec{*r.ShardId, *r.SequenceNumber}
					}
				}
				mu.Unlock()
				ackedN.Add(int64(len(out.Records)))
			}
		})
	}
	for ackedN.Load() < 2000 {
		require.True(t, time.Now().Before(putDeadline), "puts too slow")
		<-time.After(5 * time.Millisecond)
	}

	begun := time.Now()
	cancel()
	var runErr error
	select {
	case runErr = <-done:
		close(stopped)
	case <-time.After(cfg.ShutdownTimeout + 5*time.Second):
		t.Fatal("Run did not return")
	}
	took := time.Since(begun)
	require.NoError(t, runErr)
	require.Less(t, took, cfg.ShutdownTimeout, "shutdown waited out its timeout")
	for _, ch := range ended {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("a subscription or tail outlived the server")
		}
	}
	wg.Wait()
	t.Logf("shutdown took %s with %d records acknowledged", took, len(acked))

	svc, err := stream.Open(t.Context(), stream.Config{Dir: cfg.DataDir})
	require.NoError(t, err)
	defer svc.Close()
	found := map[string]rec{}
	for _, shard := range []string{"shardId-000000000000", "shardId-000000000001"} {
		it, err := svc.ShardIterator("load", shard, stream.IteratorSpec{Type: stream.TrimHorizon})
		require.NoError(t, err)
		for it != "" {
			res, err := svc.Records(t.Context(), it, 10000)
			require.NoError(t, err)
			for _, r := range res.Records {
				_, dup := found[string(r.Data)]
				require.False(t, dup, "%s stored twice", r.Data)
				found[string(r.Data)] = rec{shard, r.SequenceNumber}
			}
			if len(res.Records) == 0 {
				break
			}
			it = res.NextIterator
		}
	}
	for data, want := range acked {
		require.Equal(t, want, found[string(data)], "acknowledged record %s", data)
	}
}
