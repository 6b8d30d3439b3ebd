package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/consumer"
	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/testserver"
)

// TestWildRydesFunctionUnchanged runs the unicorn-sensors example's
// Lambda function (the Wild Rydes index.js, Node.js with the AWS SDK for
// JavaScript v2 and its DocumentClient) as written, against a runnel
// server and a DynamoDB-compatible server, and checks that the table
// holds exactly the readings put.
func TestWildRydesFunctionUnchanged(t *testing.T) {
	t.Parallel()
	needProgram(t, "node")
	sdk := testserver.AWSSDKv2(t)
	ddb := testserver.DynamoDB(t)
	srv := kinesistest.Start(t)
	client := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const table = "UnicornSensorData" // as function.yaml names it
	_, err := ddb.Client().CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String(table),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("Name"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("StatusTime"), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("Name"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("StatusTime"), KeyType: types.KeyTypeRange},
		},
		BillingMode: types.BillingModePayPerRequest,
	})
	require.NoError(t, err)

	// The example's pipelines file, with the test's DynamoDB endpoint.
	example, err := filepath.Abs("../../examples/unicorn-sensors/function.yaml")
	require.NoError(t, err)
	yml, err := os.ReadFile(example)
	require.NoError(t, err)
	require.Contains(t, string(yml), "http://127.0.0.1:8000")
	yml = bytes.ReplaceAll(yml, []byte("http://127.0.0.1:8000"), []byte(ddb.URL))
	cfg, err := Parse(example, yml, testBuiltins)
	require.NoError(t, err)
	// The environment runnel run gives handlers: the server's endpoint
	// and the local credentials its own client uses; and the SDK, which
	// a user installs in the function's directory.
	env := FunctionEnv(ctx, client.Options(), func(string) string { return "" }, slog.New(slog.DiscardHandler))
	require.Contains(t, env, "AWS_ENDPOINT_URL_KINESIS="+srv.URL)
	env = append(env, "NODE_PATH="+sdk)
	r := runFunctions(ctx, t, client, cfg, env)

	// Readings as the Wild Rydes producer sends them: one per unicorn per
	// second.
	unicorns := []string{"Shadowfax", "Rocinante", "Bucephalus"}
	want := map[string]map[string]any{}
	var entries []ktypes.PutRecordsRequestEntry
	start := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	for i := range 120 {
		for u, name := range unicorns {
			reading := map[string]any{
				"Name":         name,
				"StatusTime":   start.Add(time.Duration(i) * time.Second).Format("2006-01-02 15:04:05.000"),
				"Latitude":     40.749 + float64(i*3+u)/10000,
				"Longitude":    -73.987 - float64(i+u)/10000,
				"Distance":     float64(170 + (i*7+u*13)%60),
				"HealthPoints": float64(150 + (i*5+u)%50),
				"MagicPoints":  float64(100 + (i*11+u*3)%90),
			}
			data, err := json.Marshal(reading)
			require.NoError(t, err)
			// The item, computed apart from the function: the reading's
			// JSON read back.
			var item map[string]any
			require.NoError(t, json.Unmarshal(data, &item))
			want[name+"|"+item["StatusTime"].(string)] = item
			entries = append(entries, ktypes.PutRecordsRequestEntry{Data: data, PartitionKey: aws.String(name)})
		}
	}
	for len(entries) > 0 {
		n := min(len(entries), 500)
		out, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("wildrydes"), Records: entries[:n]})
		require.NoError(t, err)
		require.Zero(t, aws.ToInt32(out.FailedRecordCount))
		entries = entries[n:]
	}

	var got []map[string]any
	deadline := time.Now().Add(90 * time.Second)
	for {
		got = plainItems(t, ddb.Scan(t, table))
		if len(got) >= len(want) {
			break
		}
		require.False(t, time.Now().After(deadline), "%d of %d items in %s", len(got), len(want), table)
		<-time.After(50 * time.Millisecond)
	}
	require.Len(t, got, len(want))
	for _, item := range got {
		key := item["Name"].(string) + "|" + item["StatusTime"].(string)
		require.Equal(t, want[key], item, "item %s", key)
	}
	var invocations, errs int64
	for _, s := range r.Status()[0].Worker.Shards {
		invocations += s.Invocations
		errs += s.Errors
	}
	require.Positive(t, invocations)
	require.Zero(t, errs, "no invocation failed")
}

// plainItems turns items of string and number attributes into the values
// encoding/json gives the same JSON: strings and float64s.
func plainItems(t *testing.T, items []map[string]types.AttributeValue) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, item := range items {
		m := map[string]any{}
		for k, v := range item {
			switch v := v.(type) {
			case *types.AttributeValueMemberS:
				m[k] = v.Value
			case *types.AttributeValueMemberN:
				f, err := strconv.ParseFloat(v.Value, 64)
				require.NoError(t, err)
				m[k] = f
			default:
				t.Fatalf("attribute %s: unexpected type %T", k, v)
			}
		}
		out = append(out, m)
	}
	return out
}

// runFunctions runs cfg's pipelines against client, with env as the
// handlers' FunctionEnv and state in a temporary directory, until the test
// ends; they must then stop cleanly.
func runFunctions(ctx context.Context, t *testing.T, client Client, cfg *Config, env []string) *Runner {
	t.Helper()
	r, err := New(ctx, cfg, Options{
		Kinesis:     client,
		StateDir:    filepath.Join(t.TempDir(), "state"),
		Logger:      slog.New(slog.NewTextHandler(testLog{t}, nil)),
		FunctionEnv: env,
		Tune: func(c *consumer.Config) {
			c.PollInterval = 20 * time.Millisecond
			c.TakeInterval = 100 * time.Millisecond
		},
	})
	require.NoError(t, err)
	require.NoError(t, r.EnsureStreams(ctx))
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	ran := make(chan error, 1)
	go func() { ran <- r.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		require.NoError(t, <-ran)
	})
	return r
}

// TestPythonFunctionReachesRunnel runs a Python function whose boto3
// Kinesis client finds runnel's server through AWS_ENDPOINT_URL_KINESIS
// and the credentials runnel run hands it, and checks that what it put
// into another stream is each record upper-cased.
func TestPythonFunctionReachesRunnel(t *testing.T) {
	t.Parallel()
	needProgram(t, "python3")
	site, _ := filepath.Glob(filepath.Join(testserver.PyClients(), "lib", "python3*", "site-packages", "boto3"))
	if len(site) == 0 {
		if os.Getenv("RUNNEL_INTEGRATION") == "required" {
			t.Fatal("boto3 not found in the Python clients (see .ci/run) and RUNNEL_INTEGRATION=required")
		}
		t.Skip("boto3 not found in the Python clients (see .ci/run)")
	}
	srv := kinesistest.Start(t)
	client := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fn, err := filepath.Abs("testdata/lambda-python")
	require.NoError(t, err)
	dir := t.TempDir()
	yml := []byte(`streams:
  - {name: lower, shards: 2}
  - {name: upper, shards: 1}
pipelines:
  - name: upcase
    source: lower
    batchSize: 20
    handler:
      runtime: python3.11
      handler: forward.handler
      dir: ` + fn + `
      env: {TARGET_STREAM: upper, PYTHONPATH: ` + filepath.Dir(site[0]) + `}
`)
	cfg, err := Parse(filepath.Join(dir, "pipelines.yaml"), yml, testBuiltins)
	require.NoError(t, err)
	runFunctions(ctx, t, client, cfg, FunctionEnv(ctx, client.Options(), func(string) string { return "" }, slog.New(slog.DiscardHandler)))

	want := map[string]int{}
	for i := range 50 {
		data := fmt.Sprintf("reading-%d-of-unicorn", i)
		want[strings.ToUpper(data)]++
		_, err := client.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("lower"), PartitionKey: aws.String(fmt.Sprint(i % 7)), Data: []byte(data)})
		require.NoError(t, err)
	}
	it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String("upper"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon,
	})
	require.NoError(t, err)
	iter := it.ShardIterator
	got := map[string]int{}
	n := 0
	deadline := time.Now().Add(90 * time.Second)
	for n < 50 {
		require.False(t, time.Now().After(deadline), "%d of 50 records in the upper stream", n)
		out, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
		require.NoError(t, err)
		for _, rec := range out.Records {
			got[string(rec.Data)]++
			n++
		}
		iter = out.NextShardIterator
		if len(out.Records) == 0 {
			<-time.After(50 * time.Millisecond)
		}
	}
	// At least once: a retried batch may put a record twice, never lose one.
	for data := range want {
		require.Positive(t, got[data], "%s not forwarded", data)
	}
	require.Len(t, got, len(want), "only the upper-cased records")
}
