package forward

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesisclient"
	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/producer"
	"github.com/runnel-dev/runnel/internal/producer/producertest"
	"github.com/runnel-dev/runnel/internal/sink"
	"github.com/runnel-dev/runnel/internal/sink/sinktest"
)

func client(t *testing.T, url string) *kinesis.Client {
	t.Helper()
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	c, err := kinesisclient.New(t.Context(), kinesisclient.Options{Endpoint: url, Region: "us-east-1"})
	require.NoError(t, err)
	return c
}

func batch(shard string, from int, data []string, keys []string) *lambda.KinesisEvent {
	ev := &lambda.KinesisEvent{}
	for i, d := range data {
		seq := strconv.Itoa(1_000_000 + from + i)
		ev.Records = append(ev.Records, lambda.KinesisEventRecord{
			EventID: shard + ":" + seq,
			Kinesis: lambda.KinesisRecord{PartitionKey: keys[i], SequenceNumber: seq, Data: []byte(d), ApproximateArrivalTimestamp: float64(time.Now().Unix())},
		})
	}
	return ev
}

// TestForwardKeepsKeyOrderWhenThrottled forwards into a one-shard stream
// that enforces Kinesis's write limit (1000 records/s), so puts are
// throttled and retried, and checks every key's records arrive once each
// and in order.
func TestForwardKeepsKeyOrderWhenThrottled(t *testing.T) {
	url := producertest.StartLimited(t)
	c := client(t, url)
	producertest.CreateStream(t, c, "target", 1)
	f, err := New(Config{Stream: "target"}, c, Options{Producer: func(pc *producer.Config) {
		pc.BaseBackoff = 20 * time.Millisecond
		pc.MaxBackoff = 200 * time.Millisecond
		pc.Unpaced = true // so that the shard throttles
	}})
	require.NoError(t, err)

	const keys, perBatch, batches = 25, 1000, 3
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for b := range batches {
		var data, ks []string
		for i := range perBatch {
			n := b*perBatch + i
			k := fmt.Sprintf("key-%02d", n%keys)
			data = append(data, fmt.Sprintf(`{"key":%q,"n":%d}`, k, n))
			ks = append(ks, k)
		}
		resp, err := f.Invoke(ctx, batch("shardId-000000000000", b*perBatch, data, ks))
		require.NoError(t, err)
		require.Nil(t, resp)
	}
	st := f.Stats()
	require.EqualValues(t, keys*0+perBatch*batches, st.Forwarded)
	require.Positive(t, st.Throttled, "the target's write limit throttled some puts")

	last := map[string]int{}
	seen := map[int]bool{}
	for _, r := range producertest.ReadAll(t, c, "target") {
		var m struct {
			Key string
			N   int
		}
		require.NoError(t, json.Unmarshal(r.Data, &m))
		require.Equal(t, m.Key, aws.ToString(r.PartitionKey))
		require.False(t, seen[m.N], "record %d arrived twice", m.N)
		seen[m.N] = true
		if prev, ok := last[m.Key]; ok {
			require.Greater(t, m.N, prev, "key %s: %d after %d", m.Key, m.N, prev)
		}
		last[m.Key] = m.N
	}
	require.Len(t, seen, perBatch*batches)
}

func TestForwardFilterMapAndKey(t *testing.T) {
	srv := kinesistest.Start(t)
	c := client(t, srv.URL)
	producertest.CreateStream(t, c, "out", 2)
	producertest.CreateStream(t, c, "slim", 1)
	var mu sync.Mutex
	var rejected []string
	reject := func(_ context.Context, rec *lambda.KinesisEventRecord, reason error) error {
		mu.Lock()
		defer mu.Unlock()
		rejected = append(rejected, string(rec.Kinesis.Data)+" -> "+reason.Error())
		return nil
	}
	cfg, err := ParseConfig(map[string]any{
		"stream":       "out",
		"endpoint":     srv.URL,
		"filter":       `country == "DE" && amount > 10`,
		"map":          `{"user": user, "total": amount * 2, "tags": tags ?? []}`,
		"partitionKey": "user-{user}",
	})
	require.NoError(t, err)
	f, err := New(cfg, c, Options{Reject: reject})
	require.NoError(t, err)
	data := []string{
		`{"user":"ann","country":"DE","amount":11}`,
		`{"user":"bob","country":"FR","amount":50}`,
		`{"user":"cy","country":"DE","amount":5}`,
		`{"user":"dee","country":"DE","amount":12.5,"tags":["x"]}`,
		`not json`,
		`{"user":"eve","country":"DE","amount":"lots"}`,
	}
	keys := []string{"a", "b", "c", "d", "e", "f"}
	_, err = f.Invoke(context.Background(), batch("shardId-000000000007", 0, data, keys))
	require.NoError(t, err)
	st := f.Stats()
	require.EqualValues(t, 2, st.Forwarded)
	require.EqualValues(t, 2, st.Filtered)
	require.Len(t, rejected, 2, "the record that is not JSON and the one whose filter fails (string > int) are rejected: %v", rejected)

	got := map[string]string{}
	for _, r := range producertest.ReadAll(t, c, "out") {
		got[aws.ToString(r.PartitionKey)] = string(r.Data)
	}
	require.Equal(t, map[string]string{
		"user-ann": `{"tags":[],"total":22,"user":"ann"}`,
		"user-dee": `{"tags":["x"],"total":25,"user":"dee"}`,
	}, got)

	// A field list keeps those fields as they were; the key stays the
	// record's own.
	slim, err := ParseConfig(map[string]any{"stream": "slim", "map": []any{"user", "amount"}})
	require.NoError(t, err)
	f2, err := New(slim, c, Options{})
	require.NoError(t, err)
	_, err = f2.Invoke(context.Background(), batch("shardId-000000000007", 0, data[:1], keys[:1]))
	require.NoError(t, err)
	recs := producertest.ReadAll(t, c, "slim")
	require.Len(t, recs, 1)
	require.Equal(t, `{"amount":11,"user":"ann"}`, string(recs[0].Data))
	require.Equal(t, "a", aws.ToString(recs[0].PartitionKey))
}

// TestForwardHoldsBatchWhenTargetMissing: a target stream that does not
// exist is a target not (yet) there, not bad data: the batch is given back
// as unavailable, named after the stream, and nothing is rejected.
func TestForwardHoldsBatchWhenTargetMissing(t *testing.T) {
	srv := kinesistest.Start(t)
	c := client(t, srv.URL)
	rejected := 0
	f, err := New(Config{Stream: "nowhere"}, c, Options{Reject: func(context.Context, *lambda.KinesisEventRecord, error) error {
		rejected++
		return nil
	}})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = f.Invoke(ctx, batch("shardId-000000000000", 0, []string{"x"}, []string{"k"}))
	require.ErrorIs(t, err, sink.ErrUnavailable)
	require.ErrorContains(t, err, "stream nowhere")
	require.Zero(t, rejected)
}

// TestForwardHoldsBatchWhileTargetThrottles forwards 6.4 MiB, over six
// seconds of a one-shard target's write limit, in 4 KiB records (so the
// first call of 500 carries twice the shard's one-second burst and is
// throttled however fast or slow the machine, and the calls after the
// wait is first reported cannot take the rest however slow they are), in
// an invocation that ends as soon as the wait on the throttling target is
// reported: the batch comes back unavailable (not failed), and invoking it
// again delivers every record, none rejected.
func TestForwardHoldsBatchWhileTargetThrottles(t *testing.T) {
	url := producertest.StartLimited(t)
	c := client(t, url)
	producertest.CreateStream(t, c, "target", 1)
	rejected := 0
	f, err := New(Config{Stream: "target"}, c, Options{
		Reject: func(context.Context, *lambda.KinesisEventRecord, error) error { rejected++; return nil },
		Producer: func(pc *producer.Config) {
			pc.BaseBackoff = 20 * time.Millisecond
			pc.MaxBackoff = 200 * time.Millisecond
			pc.Unpaced = true // so that the shard throttles
		},
	})
	require.NoError(t, err)

	const keys, n = 10, 1600
	pad := strings.Repeat("x", 4<<10)
	var data, ks []string
	for i := range n {
		k := fmt.Sprintf("key-%02d", i%keys)
		data = append(data, fmt.Sprintf(`{"key":%q,"n":%d,"pad":%q}`, k, i, pad))
		ks = append(ks, k)
	}
	ev := batch("shardId-000000000000", 0, data, ks)

	short, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := &sinktest.Recorder{OnBlocked: cancel}
	short = sink.WithReporter(short, w)
	_, err = f.Invoke(short, ev)
	require.ErrorIs(t, err, sink.ErrUnavailable, "a throttling target holds the batch")
	require.ErrorContains(t, err, "stream target")
	blocked, _ := w.Waits()
	require.NotEmpty(t, blocked, "the wait was reported while it lasted")
	require.Equal(t, "stream target", blocked[0].Target)

	long, cancel2 := context.WithTimeout(sink.WithReporter(context.Background(), w), 60*time.Second)
	defer cancel2()
	_, err = f.Invoke(long, ev)
	require.NoError(t, err)
	require.Zero(t, rejected, "no good record is diverted")

	seen := map[int]int{}
	for _, r := range producertest.ReadAll(t, c, "target") {
		var m struct{ N int }
		require.NoError(t, json.Unmarshal(r.Data, &m))
		seen[m.N]++
	}
	require.Len(t, seen, n, "every record reached the target")
}

// TestForwardRejectsRecordsKinesisWouldRefuse: a partition key over
// Kinesis's 256 characters is poison: that record goes to the on-failure
// destination with the reason at once, the rest are forwarded.
func TestForwardRejectsRecordsKinesisWouldRefuse(t *testing.T) {
	srv := kinesistest.Start(t)
	c := client(t, srv.URL)
	producertest.CreateStream(t, c, "out", 1)
	var reasons []string
	cfg, err := ParseConfig(map[string]any{"stream": "out", "partitionKey": "{k}"})
	require.NoError(t, err)
	f, err := New(cfg, c, Options{Reject: func(_ context.Context, rec *lambda.KinesisEventRecord, reason error) error {
		reasons = append(reasons, rec.EventID+": "+reason.Error())
		return nil
	}})
	require.NoError(t, err)
	long := strings.Repeat("x", 300)
	_, err = f.Invoke(context.Background(), batch("shardId-000000000000", 0,
		[]string{`{"k":"a"}`, `{"k":"` + long + `"}`, `{"k":"b"}`}, []string{"a", "l", "b"}))
	require.NoError(t, err)
	require.Len(t, reasons, 1)
	require.Contains(t, reasons[0], "shardId-000000000000:1000001: ")
	require.Contains(t, reasons[0], "partition key is 300 characters")
	got := []string{}
	for _, r := range producertest.ReadAll(t, c, "out") {
		got = append(got, aws.ToString(r.PartitionKey))
	}
	require.Equal(t, []string{"a", "b"}, got)
}

// TestForwardRecordWithoutKey: a record put without a partition key (an
// on-demand stream with the AUTO record distribution) has none when read
// back; it is forwarded with its sequence number as the key, not refused
// as a record Kinesis would reject.
func TestForwardRecordWithoutKey(t *testing.T) {
	srv := kinesistest.Start(t)
	c := client(t, srv.URL)
	producertest.CreateStream(t, c, "out", 2)
	var reasons []string
	f, err := New(Config{Stream: "out"}, c, Options{Reject: func(_ context.Context, rec *lambda.KinesisEventRecord, reason error) error {
		reasons = append(reasons, rec.EventID+": "+reason.Error())
		return nil
	}})
	require.NoError(t, err)
	_, err = f.Invoke(context.Background(), batch("shardId-000000000000", 0, []string{"x", "y"}, []string{"", "k"}))
	require.NoError(t, err)
	require.Empty(t, reasons)
	require.EqualValues(t, 2, f.Stats().Forwarded)
	got := map[string]string{}
	for _, r := range producertest.ReadAll(t, c, "out") {
		got[string(r.Data)] = aws.ToString(r.PartitionKey)
	}
	require.Equal(t, map[string]string{"x": "1000000", "y": "k"}, got)
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		options map[string]any
		errs    []string
	}{
		{"minimal", map[string]any{"stream": "s"}, nil},
		{"all", map[string]any{"stream": "s", "endpoint": "http://127.0.0.1:4567", "filter": `event == "click"`, "map": `{"p": page}`, "partitionKey": "{user}"}, nil},
		{"field list", map[string]any{"stream": "s", "map": []any{"a", "b.c"}}, nil},
		{"no stream", map[string]any{}, []string{"stream: the target stream is required"}},
		{"bad filter", map[string]any{"stream": "s", "filter": `country == `}, []string{"filter: unexpected token"}},
		{"filter not bool", map[string]any{"stream": "s", "filter": `"yes"`}, []string{"filter: expected bool"}},
		{"bad map", map[string]any{"stream": "s", "map": `{"a": }`}, []string{"map: "}},
		{"every problem", map[string]any{
			"endpoint": "127.0.0.1:4567", "filter": "(", "map": []any{""}, "partitionKey": "{}-{",
			"decode": map[string]any{"format": "raw"},
		}, []string{"stream:", "endpoint:", "filter:", "map[0]: empty field name", "partitionKey: \"{}-{\" refers to an empty field name", "partitionKey: unbalanced", "decode.format: raw records"}},
		{"unknown option", map[string]any{"stream": "s", "filters": "x"}, []string{"filters: unknown option; did you mean filter?"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.options)
			if len(tc.errs) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, e := range tc.errs {
				require.Contains(t, err.Error(), e)
			}
		})
	}
}
