package clients

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/testserver"
)

// kclpy returns the Python interpreter of the environment .ci/run installs
// amazon-kclpy into (testserver.PyClients) and the directory of the KCL
// jars that amazon-kclpy ships, skipping the test when either is missing
// unless RUNNEL_INTEGRATION=required.
func kclpy(t *testing.T) (python, jars string) {
	t.Helper()
	python = filepath.Join(testserver.PyClients(), "bin", "python3")
	out, err := exec.Command(python, "-c", "import amazon_kclpy, os; print(os.path.join(os.path.dirname(amazon_kclpy.__file__), 'jars'))").CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("amazon-kclpy is needed in %s (see .ci/run, or set RUNNEL_PYCLIENTS): %v: %s", testserver.PyClients(), err, out)
		if os.Getenv("RUNNEL_INTEGRATION") == "required" {
			t.Fatal(msg)
		}
		t.Skip(msg + "; set RUNNEL_INTEGRATION=required to make this a failure")
	}
	return python, strings.TrimSpace(string(out))
}

// TestKCLPython runs an amazon-kclpy record processor
// (testdata/kclpy/processor.py) through the KCL's MultiLangDaemon against
// `runnel serve`, with its leases in moto's DynamoDB: the daemon hands
// every record put with the Java SDK v2, in order, to the processor, which
// checkpoints after each batch; the lease table then holds each shard's
// last checkpoint.
func TestKCLPython(t *testing.T) {
	python, jars := kclpy(t)
	java, _ := javaClients(t)
	t.Parallel()
	const name, app = "kclpy-scenario", "kclpy-scenario-app"
	ddb := testserver.Moto(t)
	srv := startServer(t)
	env := javaEnv(t, srv, "", ddb.URL)
	a := newAWSCLI(t, srv.URL)
	a.run("create-stream", "--stream-name", name, "--shard-count", "2")
	a.run("wait", "stream-exists", "--stream-name", name)

	processorPy, err := filepath.Abs(filepath.Join("testdata", "kclpy", "processor.py"))
	require.NoError(t, err)
	dir := t.TempDir()
	// properties writes the daemon's configuration for a retrieval mode
	// (POLLING or FANOUT).
	properties := func(mode string) string {
		props := filepath.Join(dir, "kclpy-"+mode+".properties")
		require.NoError(t, os.WriteFile(props, []byte(strings.Join([]string{
			"executableName = " + python + " " + processorPy,
			"streamName = " + name,
			"applicationName = " + app,
			"AwsCredentialsProvider = DefaultCredentialsProvider",
			"processingLanguage = python/3",
			"initialPositionInStream = TRIM_HORIZON",
			"regionName = us-east-1",
			"kinesisEndpoint = " + srv.URL,
			"dynamoDBEndpoint = " + ddb.URL,
			"metricsLevel = NONE",
			"retrievalMode = " + mode,
			"idleTimeBetweenReadsInMillis = 200",
			"failoverTimeMillis = 3000",
			"shardSyncIntervalMillis = 1000",
			"parentShardPollIntervalMillis = 500",
			// Without a grace period, SIGTERM ends the daemon before it
			// releases its leases and the KCL's leader lock.
			"shutdownGraceMillis = 20000",
			"",
		}, "\n")), 0o644))
		return props
	}

	daemon := func(worker, props string) (*javaProc, string) {
		out := filepath.Join(dir, worker+".out")
		p := &javaProc{name: "MultiLangDaemon " + worker}
		p.cmd = exec.Command(java, "-XX:+UseSerialGC", "-cp", filepath.Join(jars, "*"),
			"software.amazon.kinesis.multilang.MultiLangDaemon", "--properties-file", props)
		p.cmd.Env = append(env, "RUNNEL_KCLPY_OUT="+out, "RUNNEL_KCLPY_WORKER="+worker)
		p.cmd.Dir = dir
		p.cmd.Stdout, p.cmd.Stderr = &p.log, &p.log
		p.start(t)
		return p, out
	}
	// lines reads what a daemon's processor wrote, as the Java consumer's.
	lines := func(file string) *javaProc {
		p := &javaProc{}
		b, _ := os.ReadFile(file)
		_, _ = p.out.Write(b)
		return p
	}
	processedAll := func(file string, want []put) func() bool {
		return func() bool {
			got := map[put]bool{}
			for _, f := range lines(file).lines("REC") {
				got[parseREC(t, f).put] = true
			}
			for _, p := range want {
				if !got[p] {
					return false
				}
			}
			return true
		}
	}

	prod := startJava(t, env, "Produce", name, "8", "10", "0")
	prod.wait(t, cmdTimeout)
	acked := puts(t, prod)
	d, out := daemon("py", properties("POLLING"))
	waitUntil(t, 4*time.Minute, "the daemon to process every record", processedAll(out, acked))
	requireInOrder(t, lines(out), nil)
	waitUntil(t, time.Minute, "the processor to checkpoint each shard's last record", func() bool {
		rec, ckpt := map[string]string{}, map[string]string{}
		for _, f := range lines(out).lines("REC") {
			rec[f[2]] = f[3]
		}
		for _, f := range lines(out).lines("CKPT") {
			ckpt[f[2]] = f[3]
		}
		return maps.Equal(rec, ckpt)
	})
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	d.wait(t, time.Minute)

	// The lease table holds, for each shard, the checkpoint the processor
	// last made: the sequence number of the last record it was given.
	last := map[string]string{}
	for _, f := range lines(out).lines("CKPT") {
		last[f[2]] = f[3]
	}
	require.Len(t, last, 2, "the processor checkpointed both shards")
	scan, err := ddb.Client().Scan(t.Context(), &dynamodb.ScanInput{TableName: aws.String(app)})
	require.NoError(t, err)
	got := map[string]string{}
	for _, item := range scan.Items {
		key := item["leaseKey"].(*ddbtypes.AttributeValueMemberS).Value
		if cp, ok := item["checkpoint"].(*ddbtypes.AttributeValueMemberS); ok {
			got[key] = cp.Value
		}
	}
	require.Equal(t, last, got, "checkpoints in the lease table")

	// A new daemon, reading through enhanced fan-out (SubscribeToShard
	// over HTTP/2 without TLS), resumes from those checkpoints: it is
	// given every record put since, in order, and none it was given
	// before.
	prod = startJava(t, env, "Produce", name, "8", "10", "0", "10")
	prod.wait(t, cmdTimeout)
	more := puts(t, prod)
	d, out2 := daemon("py-fanout", properties("FANOUT"))
	waitUntil(t, 4*time.Minute, "the fan-out daemon to process every new record", processedAll(out2, more))
	before := map[put]bool{}
	for _, p := range acked {
		before[p] = true
	}
	requireInOrder(t, lines(out2), before)
	for _, f := range lines(out2).lines("REC") {
		require.False(t, before[parseREC(t, f).put], "%v processed again after the restart", f)
	}
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	d.wait(t, time.Minute)
	require.NotContains(t, srv.Stderr(), "level=ERROR")
	summary := a.run("describe-stream-summary", "--stream-name", name)["StreamDescriptionSummary"].(map[string]any)
	consumers := a.run("list-stream-consumers", "--stream-arn", summary["StreamARN"].(string))["Consumers"].([]any)
	require.Len(t, consumers, 1, "the second daemon registered a fan-out consumer")
	require.Equal(t, app, consumers[0].(map[string]any)["ConsumerName"])
}
