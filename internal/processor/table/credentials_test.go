package table_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/pipeline"
	"github.com/runnel-dev/runnel/internal/pipeline/pipelinetest"
	"github.com/runnel-dev/runnel/internal/processor/table"
	"github.com/runnel-dev/runnel/internal/testserver"
)

// TestEndpointFromEnvironmentNeedsNoCredentials writes items to dynalite
// as a user with no AWS setup (empty HOME, no AWS_* variable) whose
// pipeline names no endpoint: AWS_ENDPOINT_URL_DYNAMODB points at the
// local server, and the table gets the local credentials an endpoint
// given in the file gets, instead of asking the instance metadata
// service.
func TestEndpointFromEnvironmentNeedsNoCredentials(t *testing.T) {
	db := testserver.DynamoDB(t)
	testserver.WithoutAWSCredentials(t)
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", db.URL)

	client := kinesistest.Start(t).Client(t)
	r := pipelinetest.Start(t, client, `streams:
  - name: sensors
    shards: 1
pipelines:
  - name: to-table
    source: sensors
    onFailure: {file: failed.jsonl}
    handler:
      type: builtin
      name: table
      options:
        table: Readings
        createTable: {partitionKey: Name, sortKey: StatusTime}
`, pipeline.Builtins{"table": table.Builtin})

	const n = 20
	for i := range n {
		_, err := client.PutRecord(t.Context(), &kinesis.PutRecordInput{
			StreamName: aws.String("sensors"), PartitionKey: aws.String("k"), Data: []byte(sensor("Shadowfax", i)),
		})
		require.NoError(t, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(db.Scan(t, "Readings")) < n {
		blocked, _ := r.Blocked()
		require.False(t, time.Now().After(deadline), "items not written; blocked: %v", blocked)
		<-time.After(100 * time.Millisecond)
	}
	b, err := os.ReadFile(filepath.Join(r.Dir, "failed.jsonl"))
	if err == nil {
		require.Empty(t, string(b), "nothing goes to the on-failure file")
	}
	require.Len(t, db.Scan(t, "Readings"), n, "one item per reading")
}
