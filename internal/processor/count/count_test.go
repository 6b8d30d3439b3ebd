package count

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/clickstream"
	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/sink"
	"github.com/runnel-dev/runnel/internal/testserver"
)

// seqOf is the sequence number of the i-th record of a test shard, in
// runnel's fixed-width form.
func seqOf(i int) string { return fmt.Sprintf("4960%052d", i) }

// batch builds the event of a shard's records first..first+len(data)-1.
func batch(shard string, first int, data ...string) *lambda.KinesisEvent {
	ev := &lambda.KinesisEvent{}
	for i, d := range data {
		seq := seqOf(first + i)
		ev.Records = append(ev.Records, lambda.KinesisEventRecord{
			Kinesis: lambda.KinesisRecord{
				SequenceNumber: seq, Data: []byte(d), PartitionKey: "pk",
				ApproximateArrivalTimestamp: 1450310400.123, // 2015-12-17T00:00:00.123Z
			},
			EventID: shard + ":" + seq,
		})
	}
	return ev
}

// rejected collects the records a Counter rejects.
type rejected struct {
	mu   sync.Mutex
	recs []string // "<data>: <reason>"
}

func (r *rejected) reject(_ context.Context, rec *lambda.KinesisEventRecord, reason error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, string(rec.Kinesis.Data)+": "+reason.Error())
	return nil
}

func (r *rejected) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.recs...)
}

func newCounter(t testing.TB, addr string, options map[string]any) (*Counter, *rejected) {
	t.Helper()
	redisOpts := map[string]any{"addr": addr}
	if r, ok := options["redis"].(map[string]any); ok {
		for k, v := range r {
			redisOpts[k] = v
		}
	}
	options["redis"] = redisOpts
	cfg, err := ParseOptions(options)
	require.NoError(t, err)
	rej := &rejected{}
	c, err := New(cfg, "clicks", rej.reject, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c, rej
}

func redisClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

// dump returns every string key (but markers) and hash field in Redis with
// its value.
func dump(t testing.TB, rc *redis.Client) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	keys, err := rc.Keys(ctx, "*").Result()
	require.NoError(t, err)
	for _, k := range keys {
		if strings.Contains(k, "__applied:") {
			continue
		}
		switch typ := rc.Type(ctx, k).Val(); typ {
		case "string":
			out[k] = rc.Get(ctx, k).Val()
		case "hash":
			for f, v := range rc.HGetAll(ctx, k).Val() {
				out[k+"#"+f] = v
			}
		default:
			t.Fatalf("key %s has type %s", k, typ)
		}
	}
	return out
}

func invoke(t testing.TB, c *Counter, ev *lambda.KinesisEvent) {
	t.Helper()
	resp, err := c.Invoke(context.Background(), ev)
	require.NoError(t, err)
	require.Nil(t, resp)
}

func TestCountExampleKey(t *testing.T) {
	srv := testserver.Redis(t)
	c, rej := newCounter(t, srv.Addr, map[string]any{
		"key":       "{ts:2006-01-02}:{page}:{section}:{element}:{event}_{campaign}",
		"timeField": "time",
	})
	ev := batch("shardId-000000000000", 1,
		`{"time":"2015-12-17T10:11:12Z","page":"cart","element":"checkoutnow","event":"impression","campaign":2276}`,
		`{"time":"2015-12-17T23:59:59Z","page":"cart","element":"checkoutnow","event":"impression","campaign":"2276"}`,
		`{"time":"2015-12-18T00:00:00Z","page":"cart","section":null,"element":"checkoutnow","event":"impression","campaign":2276}`,
	)
	invoke(t, c, ev)
	require.Empty(t, rej.list())
	require.Equal(t, map[string]string{
		"2015-12-17:cart::checkoutnow:impression_2276": "2",
		"2015-12-18:cart::checkoutnow:impression_2276": "1",
	}, dump(t, redisClient(t, srv.Addr)))
}

func TestCountExactlyOnce(t *testing.T) {
	srv := testserver.Redis(t)
	rc := redisClient(t, srv.Addr)
	c, _ := newCounter(t, srv.Addr, map[string]any{"key": "{k}", "redis": map[string]any{"keyPrefix": "n:"}})
	data := func(from, to int) []string {
		var out []string
		for i := from; i <= to; i++ {
			out = append(out, fmt.Sprintf(`{"k":"k%d"}`, i%3))
		}
		return out
	}
	const shard = "shardId-000000000001"
	invoke(t, c, batch(shard, 1, data(1, 10)...))
	want := map[string]string{"n:k0": "3", "n:k1": "4", "n:k2": "3"}
	require.Equal(t, want, dump(t, rc))
	require.Equal(t, seqOf(10), rc.Get(context.Background(), "n:__applied:clicks:"+shard).Val())

	// The same batch again (a retry after a lost response): nothing.
	invoke(t, c, batch(shard, 1, data(1, 10)...))
	require.Equal(t, want, dump(t, rc))
	// A part of it (a bisected retry): nothing.
	invoke(t, c, batch(shard, 4, data(4, 7)...))
	require.Equal(t, want, dump(t, rc))
	// A batch straddling the marker: only records 11..15 count.
	invoke(t, c, batch(shard, 6, data(6, 15)...))
	want = map[string]string{"n:k0": "5", "n:k1": "5", "n:k2": "5"}
	require.Equal(t, want, dump(t, rc))
	require.Equal(t, seqOf(15), rc.Get(context.Background(), "n:__applied:clicks:"+shard).Val())
	// Another shard has a marker of its own.
	invoke(t, c, batch("shardId-000000000002", 1, data(1, 3)...))
	want = map[string]string{"n:k0": "6", "n:k1": "6", "n:k2": "6"}
	require.Equal(t, want, dump(t, rc))
}

func TestCountSequenceNumbersOfAnyLength(t *testing.T) {
	srv := testserver.Redis(t)
	rc := redisClient(t, srv.Addr)
	c, _ := newCounter(t, srv.Addr, map[string]any{"key": "k"})
	ev := func(seq string) *lambda.KinesisEvent {
		return &lambda.KinesisEvent{Records: []lambda.KinesisEventRecord{{
			Kinesis: lambda.KinesisRecord{SequenceNumber: seq, Data: []byte(`{}`)},
			EventID: "shardId-000000000000:" + seq,
		}}}
	}
	// Lexically "9" > "10", numerically not; and 40 digits exceed any
	// float.
	for _, seq := range []string{"9", "10", "99", "100", "1234567890123456789012345678901234567890", "1234567890123456789012345678901234567891"} {
		invoke(t, c, ev(seq))
	}
	require.Equal(t, "6", rc.Get(context.Background(), "k").Val())
	for _, seq := range []string{"100", "9", "1234567890123456789012345678901234567890"} {
		invoke(t, c, ev(seq))
	}
	require.Equal(t, "6", rc.Get(context.Background(), "k").Val())
}

func TestCountAggregatedRecords(t *testing.T) {
	srv := testserver.Redis(t)
	rc := redisClient(t, srv.Addr)
	c, _ := newCounter(t, srv.Addr, map[string]any{"key": "k"})
	// One aggregate of 5 user records followed by a plain record.
	agg := func(subs ...int64) *lambda.KinesisEvent {
		ev := &lambda.KinesisEvent{}
		for _, s := range subs {
			seq, sub := seqOf(7), s
			if s == 5 {
				ev.Records = append(ev.Records, lambda.KinesisEventRecord{
					Kinesis: lambda.KinesisRecord{SequenceNumber: seqOf(8), Data: []byte(`{}`)},
					EventID: "shardId-000000000000:" + seqOf(8),
				})
				continue
			}
			ev.Records = append(ev.Records, lambda.KinesisEventRecord{
				Kinesis: lambda.KinesisRecord{SequenceNumber: seq, SubSequenceNumber: &sub, Data: []byte(`{}`)},
				EventID: "shardId-000000000000:" + seq,
			})
		}
		return ev
	}
	invoke(t, c, agg(0, 1, 2))
	require.Equal(t, "3", rc.Get(context.Background(), "k").Val())
	require.Equal(t, seqOf(7)+"/2", rc.Get(context.Background(), "__applied:clicks:shardId-000000000000").Val())
	invoke(t, c, agg(1, 2, 3, 4)) // straddles the marker within the aggregate
	require.Equal(t, "5", rc.Get(context.Background(), "k").Val())
	invoke(t, c, agg(0, 1, 2, 3, 4, 5))
	require.Equal(t, "6", rc.Get(context.Background(), "k").Val())
	_, err := c.Invoke(context.Background(), agg(3, 2))
	require.ErrorContains(t, err, "follows")
}

func TestCountHashIncrementExpire(t *testing.T) {
	srv := testserver.Redis(t)
	rc := redisClient(t, srv.Addr)
	ctx := context.Background()
	c, rej := newCounter(t, srv.Addr, map[string]any{
		"key": "{user.country}", "hash": "by-country", "increment": "n", "expire": "1h",
		"redis": map[string]any{"keyPrefix": "p:"},
	})
	invoke(t, c, batch("shardId-000000000000", 1,
		`{"user":{"country":"DE"},"n":3}`,
		`{"user":{"country":"FR"},"n":"-1"}`,
		`{"user":{"country":"DE"},"n":4}`,
		`{"user":{"country":"DE"},"n":1.5}`,
		`{"user":{"country":"DE"}}`,
	))
	require.Equal(t, map[string]string{"p:by-country#DE": "7", "p:by-country#FR": "-1"}, dump(t, rc))
	require.Len(t, rej.list(), 2)
	require.Contains(t, rej.list()[0], `increment field "n" is not an integer: 1.5`)
	require.Contains(t, rej.list()[1], `increment field "n" is missing`)
	ttl := rc.PTTL(ctx, "p:by-country").Val()
	require.Greater(t, ttl, 59*time.Minute)
	// The time to live is set when the hash is created, not renewed.
	require.NoError(t, rc.PExpire(ctx, "p:by-country", 10*time.Minute).Err())
	invoke(t, c, batch("shardId-000000000000", 6, `{"user":{"country":"DE"},"n":1}`))
	require.Equal(t, "8", rc.HGet(ctx, "p:by-country", "DE").Val())
	require.LessOrEqual(t, rc.PTTL(ctx, "p:by-country").Val(), 10*time.Minute)
	// The marker never expires.
	require.Equal(t, time.Duration(-1), rc.PTTL(ctx, "p:__applied:clicks:shardId-000000000000").Val())
}

func TestCountKeysExpire(t *testing.T) {
	srv := testserver.Redis(t)
	rc := redisClient(t, srv.Addr)
	ctx := context.Background()
	c, _ := newCounter(t, srv.Addr, map[string]any{"key": "{k}", "expire": "90s"})
	invoke(t, c, batch("shardId-000000000000", 1, `{"k":"a"}`, `{"k":"b"}`))
	for _, k := range []string{"a", "b"} {
		ttl := rc.PTTL(ctx, k).Val()
		require.Greater(t, ttl, 80*time.Second, k)
		require.LessOrEqual(t, ttl, 90*time.Second, k)
	}
	require.NoError(t, rc.Set(ctx, "c", "5", 0).Err())
	require.NoError(t, rc.PExpire(ctx, "a", 5*time.Second).Err())
	invoke(t, c, batch("shardId-000000000000", 3, `{"k":"a"}`, `{"k":"c"}`))
	require.LessOrEqual(t, rc.PTTL(ctx, "a").Val(), 5*time.Second, "an existing time to live is kept")
	require.Greater(t, rc.PTTL(ctx, "c").Val(), 80*time.Second, "a key without one gets one")
	require.Equal(t, "6", rc.Get(ctx, "c").Val())
}

func TestCountRejects(t *testing.T) {
	srv := testserver.Redis(t)
	rc := redisClient(t, srv.Addr)
	c, rej := newCounter(t, srv.Addr, map[string]any{
		"key": "{ts:2006}:{a}", "missing": "reject", "timeField": "t",
	})
	invoke(t, c, batch("shardId-000000000000", 1,
		`{"a":"x","t":"2020-01-01T00:00:00Z"}`,
		`not json`,
		`{"t":"2020-01-01T00:00:00Z"}`,
		`{"a":null,"t":"2020-01-01T00:00:00Z"}`,
		`{"a":"x"}`,
		`{"a":"x","t":"yesterday"}`,
		`{"a":"x","t":1577836800}`,
	))
	require.Equal(t, map[string]string{"2020:x": "2"}, dump(t, rc))
	got := rej.list()
	require.Len(t, got, 5)
	require.Contains(t, got[0], "not json: record does not decode")
	require.Contains(t, got[1], `key field "a" is missing`)
	require.Contains(t, got[2], `key field "a" is missing`)
	require.Contains(t, got[3], `time field "t" is missing`)
	require.Contains(t, got[4], `is not a time`)
	// The marker still moves past rejected records.
	require.Equal(t, seqOf(7), rc.Get(context.Background(), "__applied:clicks:shardId-000000000000").Val())
}

func TestCountRejectFailureFailsBatch(t *testing.T) {
	srv := testserver.Redis(t)
	cfg, err := ParseOptions(map[string]any{"key": "{a}", "redis": map[string]any{"addr": srv.Addr}})
	require.NoError(t, err)
	c, err := New(cfg, "clicks", func(context.Context, *lambda.KinesisEventRecord, error) error {
		return fmt.Errorf("disk full")
	}, nil)
	require.NoError(t, err)
	defer c.Close(context.Background())
	_, err = c.Invoke(context.Background(), batch("shardId-000000000000", 1, `{"a":"x"}`, `[]`))
	require.ErrorContains(t, err, "disk full")
	require.Empty(t, dump(t, redisClient(t, srv.Addr)), "nothing counted")
}

func TestCountWrongTypeAppliesNothing(t *testing.T) {
	srv := testserver.Redis(t)
	rc := redisClient(t, srv.Addr)
	ctx := context.Background()
	c, _ := newCounter(t, srv.Addr, map[string]any{"key": "{k}"})
	require.NoError(t, rc.LPush(ctx, "list", "x").Err())
	require.NoError(t, rc.Set(ctx, "text", "hello", 0).Err())
	for _, bad := range []string{"list", "text"} {
		_, err := c.Invoke(ctx, batch("shardId-000000000000", 1, `{"k":"a"}`, `{"k":"`+bad+`"}`, `{"k":"b"}`))
		require.ErrorContains(t, err, "key "+bad)
		require.True(t, sink.IsPoison(err), "a key of the wrong type is the data's fault: %v", err)
		require.Zero(t, rc.Exists(ctx, "a", "b").Val(), "no key written")
		require.Zero(t, rc.Exists(ctx, "__applied:clicks:shardId-000000000000").Val(), "marker not moved")
	}
}

func TestCountParallelBatchesOfOneShardFail(t *testing.T) {
	srv := testserver.Redis(t)
	c, _ := newCounter(t, srv.Addr, map[string]any{"key": "k"})
	require.True(t, c.enter("shardId-000000000000"))
	_, err := c.Invoke(context.Background(), batch("shardId-000000000000", 1, `{}`))
	require.ErrorContains(t, err, "parallelization")
	c.leave("shardId-000000000000")
	invoke(t, c, batch("shardId-000000000000", 1, `{}`))
}

func TestCountPassword(t *testing.T) {
	srv := testserver.RedisWithConfig(t, testserver.RedisConfig{Password: "pw"})
	c, _ := newCounter(t, srv.Addr, map[string]any{"key": "k", "redis": map[string]any{"password": "pw", "db": 3}})
	invoke(t, c, batch("shardId-000000000000", 1, `{}`))
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: "pw", DB: 3})
	defer rc.Close()
	require.Equal(t, "1", rc.Get(context.Background(), "k").Val())

	// A wrong password is Redis refusing the writer, not the data: the
	// batch is held (here until its deadline) and given back untouched.
	bad, _ := newCounter(t, srv.Addr, map[string]any{"key": "k", "redis": map[string]any{"password": "wrong"}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := bad.Invoke(ctx, batch("shardId-000000000000", 2, `{}`))
	require.ErrorIs(t, err, sink.ErrUnavailable)
	require.ErrorContains(t, err, "WRONGPASS")
}

func TestCountTLS(t *testing.T) {
	files := testserver.NewTLSFiles(t)
	srv := testserver.RedisWithConfig(t, testserver.RedisConfig{TLS: files})
	c, _ := newCounter(t, srv.Addr, map[string]any{"key": "k", "redis": map[string]any{"tls": map[string]any{"caFile": files.CAFile}}})
	invoke(t, c, batch("shardId-000000000000", 1, `{}`))

	insecure, _ := newCounter(t, srv.Addr, map[string]any{"key": "k", "redis": map[string]any{"tls": map[string]any{"insecureSkipVerify": true}}})
	invoke(t, insecure, batch("shardId-000000000000", 2, `{}`))

	// System roots do not know the test CA.
	untrusted, _ := newCounter(t, srv.Addr, map[string]any{"key": "k", "redis": map[string]any{"tls": true}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := untrusted.Invoke(ctx, batch("shardId-000000000000", 3, `{}`))
	require.ErrorIs(t, err, sink.ErrUnavailable)
	require.ErrorContains(t, err, "certificate")

	// Without TLS the server does not answer.
	plain, _ := newCounter(t, srv.Addr, map[string]any{"key": "k"})
	ctx, cancel = context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = plain.Invoke(ctx, batch("shardId-000000000000", 3, `{}`))
	require.ErrorIs(t, err, sink.ErrUnavailable)

	check, _ := newCounter(t, srv.Addr, map[string]any{"key": "k", "redis": map[string]any{"tls": map[string]any{"caFile": files.CAFile}}})
	n, err := check.client.Get(context.Background(), "k").Int()
	require.NoError(t, err)
	require.Equal(t, 2, n)
}

// clickstreamBatches returns n clickstream events as batches of size
// records on one shard, and the exact count of each key of keyOf.
func clickstreamEvents(n int) []string {
	sim := clickstream.NewSimulator(clickstream.DefaultCatalogue(), 7, 200, func() time.Time {
		return time.Date(2015, 12, 17, 10, 0, 0, 0, time.UTC)
	})
	out := make([]string, n)
	for i := range out {
		b, err := json.Marshal(sim.Next())
		if err != nil {
			panic(err)
		}
		out[i] = string(b)
	}
	return out
}

func TestCountClickstream(t *testing.T) {
	srv := testserver.Redis(t)
	rc := redisClient(t, srv.Addr)
	const tmpl = "{ts:2006-01-02}:{page}:{section}:{element}:{eventType}_{campaignId}"
	c, rej := newCounter(t, srv.Addr, map[string]any{"key": tmpl, "timeField": "timestamp"})
	events := clickstreamEvents(5000)
	want := map[string]int{}
	for _, e := range events {
		var f map[string]any
		require.NoError(t, json.Unmarshal([]byte(e), &f))
		str := func(k string) string { s, _ := f[k].(string); return s }
		key := str("timestamp")[:10] + ":" + str("page") + ":" + str("section") + ":" + str("element") + ":" + str("eventType") + "_" + str("campaignId")
		want[key]++
	}
	for i := 0; i < len(events); i += 500 {
		invoke(t, c, batch("shardId-000000000000", i+1, events[i:i+500]...))
	}
	require.Empty(t, rej.list())
	got := dump(t, rc)
	require.Len(t, got, len(want))
	for k, n := range want {
		require.Equal(t, fmt.Sprint(n), got[k], k)
	}
}
