package window_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/pipeline"
	"github.com/runnel-dev/runnel/internal/processor/window"
	"github.com/runnel-dev/runnel/internal/producer/producertest"
	"github.com/runnel-dev/runnel/internal/testserver"
)

// order is one event of the named-aggregates tests.
type order struct {
	Shop, Country string
	At            time.Time
	Amount        float64
	Qty           int
	User          string
}

func (o order) json() string {
	return fmt.Sprintf(`{"shop":%q,"geo":{"country":%q},"at":%q,"amount":%s,"qty":%d,"user":%q}`,
		o.Shop, o.Country, o.At.Format(time.RFC3339Nano), json.Number(fmt.Sprint(o.Amount)), o.Qty, o.User)
}

// expected computes, without the processor, what each (minute, shop,
// country) group should hold.
func expectedOrders(orders []order) map[string]map[string]any {
	type acc struct {
		n                int
		total            float64
		minQ, maxQ       int
		users            map[string]bool
		start, end, shop string
		country          string
	}
	groups := map[string]*acc{}
	for _, o := range orders {
		m := o.At.Truncate(time.Minute)
		k := m.Format(time.RFC3339) + "/" + o.Shop + "/" + o.Country
		a := groups[k]
		if a == nil {
			a = &acc{minQ: math.MaxInt, maxQ: math.MinInt, users: map[string]bool{}, start: m.Format(time.RFC3339),
				end: m.Add(time.Minute).Format(time.RFC3339), shop: o.Shop, country: o.Country}
			groups[k] = a
		}
		a.n++
		a.total += o.Amount
		a.minQ, a.maxQ = min(a.minQ, o.Qty), max(a.maxQ, o.Qty)
		a.users[o.User] = true
	}
	out := map[string]map[string]any{}
	for k, a := range groups {
		out[k] = map[string]any{
			"minute": a.start, "until": a.end, "shop": a.shop, "geo.country": a.country,
			"orders": float64(a.n), "revenue": a.total, "smallest": float64(a.minQ), "largest": float64(a.maxQ),
			"meanAmount": a.total / float64(a.n), "buyers": float64(len(a.users)),
		}
	}
	return out
}

func namedAggregates(c *window.Config) {
	c.GroupBy = []string{"shop", "geo.country"}
	c.TimeField = "at"
	c.Field, c.Distinct = "", ""
	c.AllowedLateness = "0s"
	c.WindowStartName, c.WindowEndName = "minute", "until"
	c.Aggregates = map[string]string{
		"orders": "count()", "revenue": "sum(amount)", "smallest": "min(qty)", "largest": "max( qty )",
		"meanAmount": "avg(amount)", "buyers": "distinct(user)",
	}
}

func randomOrders(seed uint64, n int, from time.Time) []order {
	r := rand.New(rand.NewPCG(seed, 1))
	orders := make([]order, n)
	at := from
	for i := range orders {
		at = at.Add(time.Duration(r.IntN(2000)) * time.Millisecond)
		orders[i] = order{
			Shop: []string{"north", "south", "east"}[r.IntN(3)], Country: []string{"DE", "FR"}[r.IntN(2)],
			At: at, Amount: float64(r.IntN(10000)) / 4, Qty: 1 + r.IntN(9), User: fmt.Sprint("u", r.IntN(40)),
		}
	}
	return orders
}

// beforeLastMinute returns the events (in time order) before the minute
// of the last one: those of the windows a run over all of them closes.
func beforeLastMinute[E any](events []E, at func(E) time.Time) []E {
	last := at(events[len(events)-1]).Truncate(time.Minute)
	var closed []E
	for _, e := range events {
		if at(e).Before(last) {
			closed = append(closed, e)
		}
	}
	return closed
}

// readResults reads every output file into (minute/shop/country) → fields.
func readResults(t *testing.T, dir string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		require.NoError(t, err)
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &m), line)
			k := fmt.Sprint(m["minute"], "/", m["shop"], "/", m["geo.country"])
			require.NotContains(t, out, k, "result repeated")
			out[k] = m
		}
	}
	return out
}

func requireSameResults(t *testing.T, want, got map[string]map[string]any) {
	t.Helper()
	require.Equal(t, len(want), len(got), "groups")
	for k, w := range want {
		g, ok := got[k]
		require.True(t, ok, "group %s missing", k)
		require.Len(t, g, len(w), k)
		for name, v := range w {
			if f, ok := v.(float64); ok {
				require.InDelta(t, f, g[name], 1e-9*max(1, math.Abs(f)), "%s %s", k, name)
			} else {
				require.Equal(t, v, g[name], "%s %s", k, name)
			}
		}
	}
}

// TestNamedAggregatesOverSeveralFields: six named aggregates over four
// fields, grouped by two fields (one nested), window attributes renamed,
// over two shards, compared with a computation of its own.
func TestNamedAggregatesOverSeveralFields(t *testing.T) {
	t.Parallel()
	f := newFixture(t, namedAggregates)
	shards := []string{"shardId-000000000000", "shardId-000000000001"}
	var err error
	f.p, err = window.New(f.cfg, window.Env{Output: mustDir(t, f.out), Reject: f.rej.reject, Now: f.clock.Now,
		Shards: func(context.Context) ([]string, error) { return shards, nil }})
	require.NoError(t, err)
	orders := randomOrders(7, 600, time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC))
	feeds := []*shardFeed{{shard: shards[0]}, {shard: shards[1]}}
	// Each shard gets every other event, in batches of 25 taking turns;
	// both end in the last minute, so every earlier minute closes.
	for from := 0; from < len(orders); from += 50 {
		for s, feed := range feeds {
			var batch []string
			for i := from + s; i < min(from+50, len(orders)); i += 2 {
				batch = append(batch, orders[i].json())
			}
			f.invoke(feed.batch(batch...))
		}
	}
	want := expectedOrders(beforeLastMinute(orders, func(o order) time.Time { return o.At }))
	require.Greater(t, len(want), 20)
	require.Zero(t, len(f.rej.recs), "rejected")
	requireSameResults(t, want, readResults(t, f.out))

	// The state holds the aggregates across a restart; other aggregates
	// on the same state are refused, naming the cause.
	require.NoError(t, f.p.Close(context.Background()))
	f.open()
	f.cfg.Aggregates = map[string]string{"orders": "count()"}
	_, err = window.New(f.cfg, window.Env{Output: mustDir(t, f.out), Reject: f.rej.reject})
	require.ErrorContains(t, err, "written for other aggregates")
}

func mustDir(t *testing.T, dir string) *window.DirSink {
	s, err := window.NewDirSink(dir)
	require.NoError(t, err)
	return s
}

// TestLateEventsUpdateTheirWindow: with late: update, a late event is
// added to its emitted window, whose results are written again (the
// whole window's file); one older than keepClosed is rejected. Across a
// restart between the two, the update is neither lost nor counted twice.
func TestLateEventsUpdateTheirWindow(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *window.Config) {
		namedAggregates(c)
		c.Late, c.KeepClosed = window.LateUpdate, "5m"
	})
	base := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	o := func(shop string, sec int, amount float64, user string) order {
		return order{Shop: shop, Country: "DE", At: base.Add(time.Duration(sec) * time.Second), Amount: amount, Qty: 2, User: user}
	}
	a := &shardFeed{shard: "shardId-000000000000"}
	in := []order{o("north", 5, 10, "u1"), o("south", 20, 3, "u2"), o("north", 70, 1, "u1")}
	f.invoke(a.batch(in[0].json(), in[1].json(), in[2].json()))
	requireSameResults(t, expectedOrders(in[:2]), readResults(t, f.out))

	// Late for 10:00, which was emitted: the window is written again with
	// both groups, north updated.
	late := o("north", 30, 5, "u3")
	f.invoke(a.batch(late.json()))
	in = append(in, late)
	requireSameResults(t, expectedOrders([]order{in[0], in[1], late}), readResults(t, f.out))
	require.Empty(t, f.rej.recs)
	require.EqualValues(t, 1, f.p.Stats().LateUpdates)

	// A restart, then the same batch again (a redelivery): skipped.
	require.NoError(t, f.p.Close(context.Background()))
	f.open()
	f.invoke(&lambda.KinesisEvent{Records: []lambda.KinesisEventRecord{}})
	a.seq--
	f.invoke(a.batch(late.json()))
	requireSameResults(t, expectedOrders([]order{in[0], in[1], late}), readResults(t, f.out))

	// 10:20 moves the watermark on: 10:00 is older than keepClosed.
	f.invoke(a.batch(o("east", 20*60, 1, "u1").json()))
	f.invoke(a.batch(o("north", 40, 1, "u9").json()))
	require.Equal(t, 1, f.rej.count(window.ErrLate))
	require.EqualValues(t, 1, f.p.Stats().Late)
}

func TestCheckAggregates(t *testing.T) {
	t.Parallel()
	check := func(opts map[string]any) error {
		base := map[string]any{"size": "1m", "output": map[string]any{"dir": "x"}}
		for k, v := range opts {
			base[k] = v
		}
		return window.Builtin.Check(base)
	}
	err := check(map[string]any{
		"field": "v", "groupBy": []any{"total"}, "windowStartName": "t", "windowEndName": "t", "late": "drop",
		"aggregates": map[string]any{"total": "sum(v)", "n": "count(v)", "m": "median(v)", "s": "sum()", "t": "count()"},
	})
	require.Error(t, err)
	for _, want := range []string{
		"aggregates: not together with field or distinct",
		`aggregates.m: "median(v)" is not op(field)`,
		"aggregates.n: count takes no field",
		"aggregates.s: sum needs a field",
		"aggregates.t: is the name of the window start or end",
		`groupBy[0]: "total" is the name of a result field`,
		`windowEndName: "t" is also the window start's name`,
		`late: want reject or update, got "drop"`,
	} {
		require.ErrorContains(t, err, want)
	}
	require.ErrorContains(t, check(map[string]any{"keepClosed": "1h"}), "keepClosed: only with late: update")
	require.NoError(t, check(map[string]any{"late": "update", "keepClosed": "2h", "groupBy": []any{"sum"},
		"aggregates": map[string]any{"n": "count", "d": "distinct(user.id)"}}))
	require.ErrorContains(t, check(map[string]any{"output": map[string]any{"s3": map[string]any{"prefix": "p/"}}}), "output.s3.bucket: is required")
}

// TestOutputsToS3RedisAndStream: the same results through the S3 output
// (a real S3-compatible server), the Redis hash output (a real Redis) and
// the stream output (runnel's Kinesis API, read back with the SDK). The
// DynamoDB output is TestUnicornSensorsExample's.
func TestOutputsToS3RedisAndStream(t *testing.T) {
	s3srv := testserver.S3(t)
	s3srv.Env(t)
	s3srv.CreateBucket(t, "results")
	rds := testserver.Redis(t)
	orders := randomOrders(11, 200, time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC))
	want := expectedOrders(beforeLastMinute(orders, func(o order) time.Time { return o.At }))

	run := func(output map[string]any) {
		opts := map[string]any{
			"size": "1m", "timeField": "at", "groupBy": []any{"shop", "geo.country"},
			"windowStartName": "minute", "windowEndName": "until",
			"aggregates": map[string]any{"orders": "count()", "revenue": "sum(amount)", "smallest": "min(qty)",
				"largest": "max(qty)", "meanAmount": "avg(amount)", "buyers": "distinct(user)"},
			"output": output,
		}
		h, err := window.Builtin.New(t.Context(), pipeline.BuiltinEnv{Options: opts, Pipeline: "w", StateDir: t.TempDir(),
			Reject: func(context.Context, *lambda.KinesisEventRecord, error) error { t.Error("rejected"); return nil }})
		require.NoError(t, err)
		feed := &shardFeed{shard: "shardId-000000000000"}
		var datas []string
		for _, o := range orders {
			datas = append(datas, o.json())
		}
		_, err = h.Invoke(context.Background(), feed.batch(datas...))
		require.NoError(t, err)
		require.NoError(t, h.(interface{ Close(context.Context) error }).Close(context.Background()))
	}

	run(map[string]any{"s3": map[string]any{"bucket": "results", "prefix": "minutes/", "endpoint": s3srv.URL, "forcePathStyle": true}})
	ctx := context.Background()
	c := s3srv.Client()
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("results"), Prefix: aws.String("minutes/")})
	require.NoError(t, err)
	got := map[string]map[string]any{}
	var keys []string
	for _, o := range list.Contents {
		keys = append(keys, aws.ToString(o.Key))
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("results"), Key: o.Key})
		require.NoError(t, err)
		b, err := io.ReadAll(out.Body)
		out.Body.Close()
		require.NoError(t, err)
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &m))
			got[fmt.Sprint(m["minute"], "/", m["shop"], "/", m["geo.country"])] = m
		}
	}
	require.True(t, slices.Contains(keys, "minutes/20240501T100000Z_20240501T100100Z.jsonl"), keys)
	requireSameResults(t, want, got)

	run(map[string]any{"redisHash": map[string]any{"addr": rds.Addr, "key": "minutes"}})
	rc := goredis.NewClient(&goredis.Options{Addr: rds.Addr})
	defer rc.Close()
	fields, err := rc.HGetAll(ctx, "minutes").Result()
	require.NoError(t, err)
	got = map[string]map[string]any{}
	for id, v := range fields {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(v), &m))
		k := fmt.Sprint(m["minute"], "/", m["shop"], "/", m["geo.country"])
		require.Equal(t, fmt.Sprint(m["minute"], "/", m["shop"], "/", m["geo.country"]), id)
		got[k] = m
	}
	requireSameResults(t, want, got)

	kin := kinesistest.Start(t)
	kc := kin.Client(t)
	producertest.CreateStream(t, kc, "minutes", 2)
	run(map[string]any{"stream": "minutes", "endpoint": kin.URL, "region": "us-east-1"})
	got = map[string]map[string]any{}
	for _, rec := range producertest.ReadAll(t, kc, "minutes") {
		var m map[string]any
		require.NoError(t, json.Unmarshal(rec.Data, &m))
		k := fmt.Sprint(m["minute"], "/", m["shop"], "/", m["geo.country"])
		require.Equal(t, k, m["id"], "the record's id is the window and group")
		require.Equal(t, fmt.Sprint(m["shop"], "/", m["geo.country"]), aws.ToString(rec.PartitionKey))
		delete(m, "id")
		require.NotContains(t, got, k, "result repeated")
		got[k] = m
	}
	requireSameResults(t, want, got)
}

// FuzzAggregateSpec: any aggregate spec is either refused by Check with
// a message naming it, or accepted and then computes a finite value for
// an event holding the field it names.
func FuzzAggregateSpec(f *testing.F) {
	for _, s := range []string{"count()", "count", "sum(v)", " max( v ) ", "distinct(a.b)", "avg()", "median(v)", "sum((v))", "", "count(v)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		opts := map[string]any{"size": "1m", "timeField": "ts", "output": map[string]any{"dir": t.TempDir()},
			"aggregates": map[string]any{"a": spec}}
		if err := window.Builtin.Check(opts); err != nil {
			require.Contains(t, err.Error(), "aggregates.a")
			return
		}
		opts["stateDir"] = t.TempDir()
		h, err := window.Builtin.New(t.Context(), pipeline.BuiltinEnv{Options: opts, Pipeline: "p",
			Reject: func(context.Context, *lambda.KinesisEventRecord, error) error { return nil }})
		require.NoError(t, err)
		defer h.(interface{ Close(context.Context) error }).Close(context.Background())
		// The field the spec names, whatever it is, holds 3 (nested
		// paths too); a second event closes the window.
		field := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(spec), ")"))
		if _, after, ok := strings.Cut(field, "("); ok {
			field = strings.TrimSpace(after)
		}
		ev := map[string]any{"ts": "2024-05-01T10:00:01Z"}
		if field != "" && !strings.HasPrefix(field, "count") {
			cur := ev
			parts := strings.Split(field, ".")
			for _, p := range parts[:len(parts)-1] {
				next := map[string]any{}
				cur[p] = next
				cur = next
			}
			cur[parts[len(parts)-1]] = 3
		}
		first, _ := json.Marshal(ev)
		ev["ts"] = "2024-05-01T10:05:00Z"
		second, _ := json.Marshal(ev)
		feed := &shardFeed{shard: "shardId-000000000000"}
		_, err = h.Invoke(context.Background(), feed.batch(string(first), string(second)))
		require.NoError(t, err)
	})
}
