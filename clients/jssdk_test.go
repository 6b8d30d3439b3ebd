package clients

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/runneltest"
)

// jssdkPackage is where the JavaScript scenario's SDK version is pinned.
var jssdkPackage = filepath.Join("testdata", "jssdk", "package.json")

// jssdkVersion is the @aws-sdk/client-kinesis version pinned in
// testdata/jssdk/package.json.
func jssdkVersion(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(jssdkPackage)
	require.NoError(t, err)
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	require.NoError(t, json.Unmarshal(raw, &pkg))
	v := pkg.Dependencies["@aws-sdk/client-kinesis"]
	require.NotEmpty(t, v, "%s pins no @aws-sdk/client-kinesis", jssdkPackage)
	return v
}

// jssdkDir returns node and the directory @aws-sdk/client-kinesis is
// installed in at the pinned version ($RUNNEL_JSSDK, else
// <user cache dir>/runnel/jssdk), skipping the test when either is missing
// unless RUNNEL_INTEGRATION=required.
func jssdkDir(t *testing.T) (node, dir string) {
	t.Helper()
	want := jssdkVersion(t)
	dir = os.Getenv("RUNNEL_JSSDK")
	if dir == "" {
		if c, err := os.UserCacheDir(); err == nil {
			dir = filepath.Join(c, "runnel", "jssdk")
		}
	}
	node, nodeErr := exec.LookPath("node")
	var installed struct {
		Version string `json:"version"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "node_modules", "@aws-sdk", "client-kinesis", "package.json"))
	if err == nil {
		err = json.Unmarshal(raw, &installed)
	}
	switch {
	case nodeErr != nil:
		err = nodeErr
	case err == nil && installed.Version != want:
		err = fmt.Errorf("found version %s, want %s", installed.Version, want)
	}
	if err != nil {
		msg := fmt.Sprintf("node and @aws-sdk/client-kinesis@%s are needed (npm install --prefix %s @aws-sdk/client-kinesis@%s, or set RUNNEL_JSSDK): %v", want, dir, want, err)
		if os.Getenv("RUNNEL_INTEGRATION") == "required" {
			t.Fatal(msg)
		}
		t.Skip(msg + "; set RUNNEL_INTEGRATION=required to make this a failure")
	}
	return node, dir
}

var tlsCertFile = regexp.MustCompile(`cert_file=(\S+)`)

// startTLSServer runs `runnel serve --tls` on a free port and returns it
// with the certificate file it made and logged. Cleanup stops it with
// SIGTERM and checks that it exits cleanly.
func startTLSServer(t *testing.T, extra ...string) (*runneltest.Process, string) {
	t.Helper()
	s := runneltest.Serve(t, append([]string{"--tls", "--data-dir", filepath.Join(t.TempDir(), "data")}, extra...)...)
	stopOnCleanup(t, s, "runnel serve --tls")
	m := tlsCertFile.FindStringSubmatch(s.Stderr())
	if m == nil {
		t.Fatalf("runnel serve --tls logged no cert_file before listening:\n%s", s.Stderr())
	}
	return s, m[1]
}

// TestJSSDK drives `runnel serve` with the AWS SDK for JavaScript v3
// over HTTP/2: create and wait, PutRecord and PutRecords, ListShards,
// GetShardIterator and GetRecords, then enhanced fan-out (register,
// SubscribeToShard while putting, resume after the continuation with a
// second consumer), deregister, and DeleteStream with
// EnforceConsumerDeletion. testdata/jssdk/kinesis.mjs prints a summary.
//
// It runs twice: over HTTPS (HTTP/2 negotiated by ALPN) and over plain
// http:// (HTTP/2 by prior knowledge, h2c), which is what the SDK sends to
// an http:// endpoint for every call. Each runs again with --auth: over
// HTTP/2 the SDK signs the host as :authority, not Host, and every call
// must still verify.
func TestJSSDK(t *testing.T) {
	t.Parallel()
	node, dir := jssdkDir(t)
	for _, v := range []struct {
		name      string
		tls, auth bool
	}{{"https", true, false}, {"h2c", false, false}, {"https-auth", true, true}, {"h2c-auth", false, true}} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			var extra []string
			if v.auth {
				// clientEnv's credentials, as a key that may do everything.
				keys := filepath.Join(t.TempDir(), "keys.yaml")
				require.NoError(t, os.WriteFile(keys, []byte("keys:\n  - id: runnel-test\n    secret: runnel-test\n    all: true\n"), 0o600))
				extra = []string{"--auth", keys}
			}
			srv := jssdkScenario(t, node, dir, v.tls, extra...)
			if v.auth {
				require.Contains(t, srv.Stderr(), "auth=true")
			}
		})
	}
}

func jssdkScenario(t *testing.T, node, dir string, tls bool, extra ...string) *runneltest.Process {
	var srv *runneltest.Process
	env := append(clientEnv(t),
		"RUNNEL_JSSDK="+dir,
		"RUNNEL_STREAM=js-sdk-scenario",
		"NODE_OPTIONS=",
		"NODE_PATH=",
	)
	if tls {
		var cert string
		srv, cert = startTLSServer(t, extra...)
		env = append(env, "NODE_EXTRA_CA_CERTS="+cert)
	} else {
		srv = runneltest.Serve(t, append([]string{"--data-dir", filepath.Join(t.TempDir(), "data")}, extra...)...)
		stopOnCleanup(t, srv, "runnel serve")
	}
	env = append(env, "RUNNEL_ENDPOINT="+srv.URL)
	res := runCmd(t, env, nil, node, filepath.Join("testdata", "jssdk", "kinesis.mjs"))
	require.Equal(t, 0, res.code, "JavaScript SDK scenario failed:\n%s\nserver log:\n%s", res.stderr, srv.Stderr())

	var out struct {
		Waiter                        string   `json:"waiter"`
		Status                        string   `json:"status"`
		OpenShards                    int      `json:"open_shards"`
		BatchFailed                   int      `json:"batch_failed"`
		BatchShards                   []string `json:"batch_shards"`
		PutShard                      string   `json:"put_shard"`
		Shards                        []string `json:"shards"`
		GetData                       []string `json:"get_data"`
		GetSequenceNumbersMatch       bool     `json:"get_sequence_numbers_match"`
		GetArrivalIsDate              bool     `json:"get_arrival_is_date"`
		GetHasNextIterator            bool     `json:"get_has_next_iterator"`
		ConsumerStatus                string   `json:"consumer_status"`
		FirstEventRecords             int      `json:"first_event_records"`
		ContinuationMatchesLastRecord bool     `json:"continuation_matches_last_record"`
		EventsWithRecords             int      `json:"events_with_records"`
		MillisBehindLatest            *int64   `json:"millis_behind_latest"`
		SubscribeData                 []string `json:"subscribe_data"`
		SubscribeSequenceNumbersMatch bool     `json:"subscribe_sequence_numbers_match"`
		LastContinuationIsLastPut     bool     `json:"last_continuation_is_last_put"`
		ResumedData                   []string `json:"resumed_data"`
		ResumedContinuationIsAfter    bool     `json:"resumed_continuation_is_after"`
		DeleteWithConsumer            bool     `json:"delete_with_consumer"`
		DeleteWaiter                  string   `json:"delete_waiter"`
		StreamsAfterDelete            []string `json:"streams_after_delete"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &out), "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)

	require.Equal(t, "SUCCESS", out.Waiter)
	require.Equal(t, "ACTIVE", out.Status)
	require.Equal(t, 2, out.OpenShards)
	require.Zero(t, out.BatchFailed)
	require.Equal(t, []string{out.PutShard, out.PutShard}, out.BatchShards, "same partition key, same shard")
	require.Equal(t, []string{"shardId-000000000000", "shardId-000000000001"}, out.Shards)
	b64 := base64.StdEncoding.EncodeToString
	require.Equal(t, []string{b64([]byte("one")), b64([]byte("two")), b64([]byte{0, 255, 1, 254})}, out.GetData)
	require.True(t, out.GetSequenceNumbersMatch, "GetRecords returns the put sequence numbers in order")
	require.True(t, out.GetArrivalIsDate)
	require.True(t, out.GetHasNextIterator)

	require.Equal(t, "ACTIVE", out.ConsumerStatus)
	require.Zero(t, out.FirstEventRecords, "nothing is put before the LATEST subscription's first event")
	require.Equal(t, []string{"live-1", "live-2", "live-3"}, out.SubscribeData)
	require.True(t, out.SubscribeSequenceNumbersMatch, "events carry the put sequence numbers in order")
	require.Positive(t, out.EventsWithRecords)
	require.True(t, out.ContinuationMatchesLastRecord, "each event's ContinuationSequenceNumber is its last record's")
	require.True(t, out.LastContinuationIsLastPut)
	require.NotNil(t, out.MillisBehindLatest)
	require.Equal(t, []string{"after"}, out.ResumedData, "a subscription after the continuation sees only later records")
	require.True(t, out.ResumedContinuationIsAfter)

	require.True(t, out.DeleteWithConsumer)
	require.Equal(t, "SUCCESS", out.DeleteWaiter)
	require.Empty(t, out.StreamsAfterDelete)
	return srv
}
