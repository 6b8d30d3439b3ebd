package table_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/pipeline"
	"github.com/runnel-dev/runnel/internal/pipeline/pipelinetest"
	"github.com/runnel-dev/runnel/internal/processor/table"
	"github.com/runnel-dev/runnel/internal/testserver"
)

// throttlingProxy forwards DynamoDB requests to a real server. While
// throttling is set it answers BatchWriteItem itself, without forwarding:
// every other call with every item unprocessed, the others with
// ProvisionedThroughputExceededException.
type throttlingProxy struct {
	throttling atomic.Bool
	answered   atomic.Int64
	proxy      *httputil.ReverseProxy
}

func (p *throttlingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.throttling.Load() || !strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".BatchWriteItem") {
		p.proxy.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	if p.answered.Add(1)%2 == 0 {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"throttled by the test proxy"}`)
		return
	}
	var in struct{ RequestItems json.RawMessage }
	if err := json.Unmarshal(body, &in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	_, _ = io.Copy(w, bytes.NewReader(fmt.Appendf(nil, `{"UnprocessedItems":%s}`, in.RequestItems)))
}

// TestDynamoDBThrottlingHoldsTheBatch runs a table pipeline through a
// proxy that throttles every write for longer than the pipeline's whole
// retry budget: the shards wait, visibly, and once DynamoDB takes writes
// again every event is an item and nothing went to the on-failure file.
func TestDynamoDBThrottlingHoldsTheBatch(t *testing.T) {
	db := testserver.DynamoDB(t)
	target, err := url.Parse(db.URL)
	require.NoError(t, err)
	proxy := &throttlingProxy{proxy: httputil.NewSingleHostReverseProxy(target)}
	ps := httptest.NewServer(proxy)
	defer ps.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "runnel")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "runnel")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	client := kinesistest.Start(t).Client(t)
	r := pipelinetest.Start(t, client, fmt.Sprintf(`streams:
  - name: sensors
    shards: 2
pipelines:
  - name: to-table
    source: sensors
    batchSize: 40
    maxRetries: 1
    timeout: 2s
    onFailure: {file: failed.jsonl}
    handler:
      type: builtin
      name: table
      options:
        table: UnicornSensorData
        endpoint: %q
        region: us-east-1
        createTable: {partitionKey: Name, sortKey: StatusTime}
`, ps.URL), pipeline.Builtins{"table": table.Builtin})
	ctx := t.Context()

	const n = 400
	put := func(from, to int) {
		var entries []types.PutRecordsRequestEntry
		for i := from; i < to; i++ {
			entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint("unicorn-", i%7)), Data: []byte(sensor(fmt.Sprint("unicorn-", i%7), i))})
		}
		out, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("sensors"), Records: entries})
		require.NoError(t, err)
		require.Zero(t, aws.ToInt32(out.FailedRecordCount))
	}
	// waitItems polls until the table (created by the first batch) holds
	// want items.
	waitItems := func(want int) {
		deadline := time.Now().Add(90 * time.Second)
		for {
			out, err := db.Client().Scan(ctx, &dynamodb.ScanInput{TableName: aws.String("UnicornSensorData"), Select: dbtypes.SelectCount})
			if err == nil && int(out.Count) >= want && out.LastEvaluatedKey == nil {
				return
			}
			require.False(t, time.Now().After(deadline), "items not written (%v)", err)
			<-time.After(100 * time.Millisecond)
		}
	}
	put(0, 100)
	waitItems(100)

	proxy.throttling.Store(true)
	start := time.Now()
	put(100, n)
	// Throttle well past the retry budget (two tries of two seconds).
	deadline := start.Add(60 * time.Second)
	for time.Since(start) < 5*time.Second || proxy.answered.Load() < 10 {
		require.False(t, time.Now().After(deadline), "the pipeline stopped writing: %d throttled calls", proxy.answered.Load())
		<-time.After(50 * time.Millisecond)
	}
	blocked, _ := r.Blocked()
	require.NotEmpty(t, blocked, "a shard shows what it waits for")
	require.Contains(t, blocked[0], "dynamodb table UnicornSensorData")
	proxy.throttling.Store(false)

	waitItems(n)
	require.Len(t, db.Scan(t, "UnicornSensorData"), n)
	failed, err := os.ReadFile(filepath.Join(r.Dir, "failed.jsonl"))
	require.NoError(t, err)
	require.Empty(t, string(failed), "nothing goes to the on-failure file")
}
