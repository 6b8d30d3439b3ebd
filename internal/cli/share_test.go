package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/runneltest"
	"github.com/runnel-dev/runnel/internal/testserver"
)

// Several processes share a stream's shards through a DynamoDB lease
// table, as the README says: runnel serve --pipelines with a runnel run
// beside it, and two runnel run on one machine. Every record is printed
// by one of them, both hold leases, and each exit summary has real
// figures.
func TestProcessesShareShardsThroughADynamoDBLeaseTable(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	for _, serveRuns := range []bool{true, false} {
		name := "two runs"
		if serveRuns {
			name = "serve --pipelines plus run"
		}
		t.Run(name, func(t *testing.T) { testProcessesShareShards(t, serveRuns) })
	}
}

func testProcessesShareShards(t *testing.T, serveRuns bool) {
	ddb := testserver.DynamoDB(t)
	env := []string{"AWS_ACCESS_KEY_ID=runnel", "AWS_SECRET_ACCESS_KEY=runnel", "AWS_REGION=us-east-1"}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "pipelines.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`streams:
  - name: logs
    shards: 4
pipelines:
  - name: print
    source: logs
    leases: {dynamodbTable: print-leases, endpoint: %q, region: us-east-1}
    handler: {type: builtin, name: log}
`, ddb.URL)), 0o644))

	var procs []*runneltest.Process
	var url string
	if serveRuns {
		srv := runneltest.Start(t, env, "serve", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"), "--fsync", "never", "--pipelines", cfgPath)
		url = srv.WaitFor(t, regexp.MustCompile(`msg="?listening"?.*url"?[=:]"?(http://127\.0\.0\.1:[1-9][0-9]*)`), time.Minute)[1]
		srv.WaitFor(t, regexp.MustCompile(`msg="pipeline starting".* pipeline=print`), time.Minute)
		procs = append(procs, srv)
	} else {
		url = runneltest.Serve(t, "--data-dir", filepath.Join(dir, "data"), "--fsync", "never").URL
	}
	for i := len(procs); i < 2; i++ {
		run := runneltest.Start(t, env, "--endpoint", url, "run", cfgPath, "--state-dir", filepath.Join(dir, fmt.Sprint("state-", i)))
		run.WaitFor(t, regexp.MustCompile(`msg="pipeline starting".* pipeline=print`), time.Minute)
		procs = append(procs, run)
	}

	client := kinesis.New(kinesis.Options{
		BaseEndpoint: aws.String(url),
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("runnel", "runnel", ""),
	})
	const n = 200
	for i := range n {
		_, err := client.PutRecord(t.Context(), &kinesis.PutRecordInput{
			StreamName: aws.String("logs"), PartitionKey: aws.String(fmt.Sprint("key-", i)), Data: []byte(fmt.Sprintf("line-%d", i)),
		})
		require.NoError(t, err)
	}

	db := ddb.Client()
	deadline := time.Now().Add(90 * time.Second)
	for {
		var out strings.Builder
		for _, p := range procs {
			out.WriteString(p.Stdout())
		}
		missing := 0
		for i := range n {
			if !strings.Contains(out.String(), fmt.Sprintf(`"data":"line-%d"`, i)) {
				missing++
			}
		}
		owners := map[string]int{}
		scan, err := db.Scan(t.Context(), &dynamodb.ScanInput{TableName: aws.String("print-leases")})
		require.NoError(t, err)
		for _, item := range scan.Items {
			if v, ok := item["leaseOwner"].(*ddbtypes.AttributeValueMemberS); ok {
				owners[v.Value]++
			}
		}
		if missing == 0 && len(owners) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records not printed; lease owners %v\nstderr 0:\n%s\nstderr 1:\n%s", missing, n, owners, procs[0].Stderr(), procs[1].Stderr())
		}
		<-time.After(50 * time.Millisecond)
	}

	// Each process's exit summary counts what it handled: together at
	// least every record (a shard handed over mid-batch may be counted by
	// both).
	summary := regexp.MustCompile(`(?m)^  shardId-\d+ .* records (\d+) `)
	total := 0
	for _, p := range procs {
		require.NoError(t, p.Signal(syscall.SIGTERM))
		select {
		case <-p.Done():
		case <-time.After(60 * time.Second):
			t.Fatal("process did not stop within 60s of SIGTERM")
		}
		for _, m := range summary.FindAllStringSubmatch(p.Stdout(), -1) {
			var v int
			_, _ = fmt.Sscan(m[1], &v)
			total += v
		}
	}
	t.Logf("exit summaries count %d records", total)
	require.GreaterOrEqual(t, total, n, "exit summaries")
}
