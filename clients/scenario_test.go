// Package scenario runs the runnel binary as a user would: `runnel serve` as
// a real process, driven by the aws CLI and by runnel's own client verbs.
package clients

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/runneltest"
)

// cmdTimeout bounds every single command the scenario runs.
const cmdTimeout = 2 * time.Minute

// requireTool returns the path of a program the scenario needs. It skips
// the test when the program is missing, unless RUNNEL_INTEGRATION=required.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("RUNNEL_INTEGRATION") == "required" {
			t.Fatalf("%s is required (RUNNEL_INTEGRATION=required) but not found: %v", name, err)
		}
		t.Skipf("%s not found; set RUNNEL_INTEGRATION=required to make this a failure", name)
	}
	return p
}

// scenarioParallel is how many scenario tests run at once unless
// -parallel says otherwise. They spend most of their time waiting on
// outside processes (a KCL worker's lease takeover, a JVM starting), not
// on the CPU, so more than GOMAXPROCS (go test's default) run side by side
// keeps the package's wall time, and its risk of go test's 10-minute
// limit on a busy machine, down.
const scenarioParallel = 4

func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		if err := flag.Set("test.parallel", strconv.Itoa(scenarioParallel)); err != nil {
			panic(err)
		}
	}
	runneltest.Main(m)
}

// clientEnv is the environment of every client process: dummy
// credentials, a fixed region, no shared AWS configuration.
func clientEnv(t *testing.T) []string {
	dir := t.TempDir()
	return append(os.Environ(),
		"AWS_ACCESS_KEY_ID=runnel-test",
		"AWS_SECRET_ACCESS_KEY=runnel-test",
		"AWS_DEFAULT_REGION=us-east-1",
		"AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE="+filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"),
		"AWS_PAGER=",
		"AWS_ENDPOINT_URL=",
		"AWS_ENDPOINT_URL_KINESIS=",
	)
}

// startServer runs `runnel serve` on a free port with a fresh data
// directory. Cleanup stops it with SIGTERM and checks that it exits
// cleanly.
func startServer(t *testing.T, extra ...string) *runneltest.Process {
	t.Helper()
	s := runneltest.Serve(t, append([]string{"--data-dir", filepath.Join(t.TempDir(), "data")}, extra...)...)
	stopOnCleanup(t, s, "runnel serve")
	return s
}

// stopOnCleanup stops s with SIGTERM when the test ends and checks that it
// exits cleanly within 30s. name says what s is in the errors.
func stopOnCleanup(t *testing.T, s *runneltest.Process, name string) {
	t.Cleanup(func() {
		switch err := s.Stop(30 * time.Second); {
		case errors.Is(err, runneltest.ErrStillRunning):
			t.Errorf("%s did not exit within 30s of SIGTERM\n%s", name, s.Stderr())
		case err != nil:
			t.Errorf("%s did not exit cleanly after SIGTERM: %v\n%s", name, err, s.Stderr())
		}
	})
}

// result is what a finished command left behind.
type result struct {
	stdout, stderr string
	code           int
}

func runCmd(t *testing.T, env []string, stdin io.Reader, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		require.True(t, ok, "running %s %q: %v", name, args, err)
		r.code = ee.ExitCode()
	}
	return r
}

// awsCLI runs `aws kinesis` against one endpoint.
type awsCLI struct {
	t        *testing.T
	path     string
	endpoint string
	env      []string
	extra    []string
}

func newAWSCLI(t *testing.T, endpoint string) *awsCLI {
	path := requireTool(t, "aws")
	a := &awsCLI{t: t, path: path, endpoint: endpoint, env: clientEnv(t)}
	// Version 2 reads blob arguments as base64 unless told otherwise;
	// version 1 has no such option and always takes raw text.
	if v := runCmd(t, a.env, nil, path, "--version"); strings.Contains(v.stdout+v.stderr, "aws-cli/2") {
		a.extra = []string{"--cli-binary-format", "raw-in-base64-out"}
	}
	return a
}

func (a *awsCLI) try(args ...string) result {
	a.t.Helper()
	full := append([]string{"kinesis"}, args...)
	full = append(full, "--endpoint-url", a.endpoint, "--output", "json")
	full = append(full, a.extra...)
	return runCmd(a.t, a.env, nil, a.path, full...)
}

// run runs an aws kinesis command that must succeed and decodes its JSON
// output into a map (nil when there is none).
func (a *awsCLI) run(args ...string) map[string]any {
	a.t.Helper()
	r := a.try(args...)
	require.Equal(a.t, 0, r.code, "aws kinesis %s:\n%s", strings.Join(args, " "), r.stderr)
	if strings.TrimSpace(r.stdout) == "" {
		return nil
	}
	var out map[string]any
	require.NoError(a.t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
	return out
}

// runnelCLI runs the runnel client verbs against one endpoint.
type runnelCLI struct {
	t        *testing.T
	bin      string
	endpoint string
	env      []string
}

func (r *runnelCLI) try(stdin io.Reader, args ...string) result {
	r.t.Helper()
	return runCmd(r.t, r.env, stdin, r.bin, append([]string{"--endpoint", r.endpoint}, args...)...)
}

func (r *runnelCLI) run(stdin io.Reader, args ...string) result {
	r.t.Helper()
	res := r.try(stdin, args...)
	require.Equal(r.t, 0, res.code, "runnel %s:\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), res.stdout, res.stderr)
	return res
}

func TestScenario(t *testing.T) {
	t.Parallel()
	requireTool(t, "aws")
	bin := runneltest.Binary(t)
	srv := startServer(t)
	a := newAWSCLI(t, srv.URL)
	rn := &runnelCLI{t: t, bin: bin, endpoint: srv.URL, env: clientEnv(t)}

	t.Run("aws CLI", func(t *testing.T) {
		a := *a
		a.t = t
		const name = "scenario-aws"
		a.run("create-stream", "--stream-name", name, "--shard-count", "2")
		a.run("wait", "stream-exists", "--stream-name", name)

		sum := a.run("describe-stream-summary", "--stream-name", name)["StreamDescriptionSummary"].(map[string]any)
		require.Equal(t, "ACTIVE", sum["StreamStatus"])
		require.Equal(t, name, sum["StreamName"])
		require.EqualValues(t, 2, sum["OpenShardCount"])
		require.EqualValues(t, 24, sum["RetentionPeriodHours"])

		put := a.run("put-record", "--stream-name", name, "--partition-key", "pk-0", "--data", "hello from aws")
		require.Regexp(t, `^shardId-[0-9]{12}$`, put["ShardId"])
		require.Regexp(t, `^[0-9]+$`, put["SequenceNumber"])

		records := `[{"Data":"batch one","PartitionKey":"pk-1"},{"Data":"batch two","PartitionKey":"pk-2"},{"Data":"batch three","PartitionKey":"pk-3"}]`
		puts := a.run("put-records", "--stream-name", name, "--records", records)
		require.EqualValues(t, 0, puts["FailedRecordCount"])
		require.Len(t, puts["Records"], 3)

		shards := a.run("list-shards", "--stream-name", name)["Shards"].([]any)
		require.Len(t, shards, 2)
		requireHashSpaceCovered(t, shards)

		var got []string
		for _, s := range shards {
			id := s.(map[string]any)["ShardId"].(string)
			it := a.run("get-shard-iterator", "--stream-name", name, "--shard-id", id, "--shard-iterator-type", "TRIM_HORIZON")["ShardIterator"].(string)
			out := a.run("get-records", "--shard-iterator", it)
			require.NotEmpty(t, out["NextShardIterator"])
			var last *big.Int
			for _, r := range out["Records"].([]any) {
				rec := r.(map[string]any)
				data, err := base64.StdEncoding.DecodeString(rec["Data"].(string))
				require.NoError(t, err)
				got = append(got, string(data))
				seq, ok := new(big.Int).SetString(rec["SequenceNumber"].(string), 10)
				require.True(t, ok)
				if last != nil {
					require.Equal(t, 1, seq.Cmp(last), "sequence numbers increase within a shard")
				}
				last = seq
			}
		}
		require.ElementsMatch(t, []string{"hello from aws", "batch one", "batch two", "batch three"}, got)

		// runnel tail reads what the aws CLI wrote.
		tail := rn.run(nil, "tail", name, "--no-follow", "--from", "trim-horizon")
		require.ElementsMatch(t, got, strings.Split(strings.TrimSuffix(tail.stdout, "\n"), "\n"))

		a.run("delete-stream", "--stream-name", name)
		a.run("wait", "stream-not-exists", "--stream-name", name)
		r := a.try("describe-stream-summary", "--stream-name", name)
		require.NotEqual(t, 0, r.code)
		require.Contains(t, r.stderr, "ResourceNotFoundException")
	})

	t.Run("runnel CLI", func(t *testing.T) {
		rn := *rn
		rn.t = t
		const name = "scenario-runnel"
		rn.run(nil, "stream", "create", name, "--shards", "3", "--tags", "team=data,env=test")
		require.Contains(t, strings.Split(rn.run(nil, "stream", "list").stdout, "\n"), name)

		desc := rn.run(nil, "stream", "describe", name).stdout
		require.Contains(t, desc, "ACTIVE")
		require.Contains(t, desc, "shardId-000000000002")
		var raw struct {
			StreamDescriptionSummary struct {
				StreamName     string
				StreamStatus   string
				OpenShardCount int
			}
			Shards []map[string]any
		}
		require.NoError(t, json.Unmarshal([]byte(rn.run(nil, "stream", "describe", name, "--json").stdout), &raw))
		require.Equal(t, name, raw.StreamDescriptionSummary.StreamName)
		require.Equal(t, "ACTIVE", raw.StreamDescriptionSummary.StreamStatus)
		require.Equal(t, 3, raw.StreamDescriptionSummary.OpenShardCount)
		shards := make([]any, len(raw.Shards))
		for i, s := range raw.Shards {
			shards[i] = s
		}
		requireHashSpaceCovered(t, shards)

		tags := a.run("list-tags-for-stream", "--stream-name", name)["Tags"].([]any)
		require.Len(t, tags, 2)

		one := rn.run(nil, "put", name, "the first record", "--key", "k").stdout
		require.Regexp(t, `^shardId-[0-9]{12}\t[0-9]+\n$`, one)

		const n = 1200
		var in strings.Builder
		want := []string{"the first record"}
		for i := range n {
			l := fmt.Sprintf("line-%05d", i)
			in.WriteString(l + "\n")
			want = append(want, l)
		}
		put := rn.run(strings.NewReader(in.String()), "put", name)
		require.Contains(t, put.stderr, fmt.Sprintf("sent %d records, 0 failed", n))

		tail := rn.run(nil, "tail", name, "--no-follow", "--from", "trim-horizon", "--format", "json")
		lines := strings.Split(strings.TrimSuffix(tail.stdout, "\n"), "\n")
		var got []string
		lastInShard := map[string]string{}
		for _, l := range lines {
			var rec struct{ ShardID, SequenceNumber, PartitionKey, Arrival, Data string }
			require.NoError(t, json.Unmarshal([]byte(l), &rec), l)
			require.NotEmpty(t, rec.SequenceNumber)
			require.NotEmpty(t, rec.PartitionKey)
			require.NotEmpty(t, rec.Arrival)
			if prev, ok := lastInShard[rec.ShardID]; ok && strings.HasPrefix(prev, "line-") {
				require.Less(t, prev, rec.Data, "records of one shard come out in put order")
			}
			lastInShard[rec.ShardID] = rec.Data
			got = append(got, rec.Data)
		}
		require.ElementsMatch(t, want, got)
		require.Greater(t, len(lastInShard), 1, "random partition keys spread records over shards")

		// A following tail prints what arrives and stops cleanly on SIGINT.
		// Records put before it holds its LATEST iterators would not be
		// printed, so wait for all three shards first.
		follow := startTail(t, &rn, name)
		waitFor(t, "tail to start reading 3 shards", func() bool {
			return strings.Count(follow.log.String(), "msg=\"reading shard\"") == 3
		})
		for _, key := range []string{"a", "b", "c", "d", "e", "f"} {
			rn.run(nil, "put", name, "while following "+key, "--key", key)
		}
		waitFor(t, "tail to print the records put while following", func() bool {
			return strings.Count(follow.out.String(), "while following ") == 6
		})
		follow.interrupt(t)

		rn.run(nil, "stream", "delete", name)
		require.NotContains(t, strings.Split(rn.run(nil, "stream", "list").stdout, "\n"), name)

		missing := rn.try(nil, "stream", "describe", name)
		require.Equal(t, 1, missing.code)
		require.Regexp(t, `^runnel: ResourceNotFoundException: .+\n$`, missing.stderr)

		usage := rn.try(nil, "tail", name, "--from", "yesterday")
		require.Equal(t, 2, usage.code)
	})

	require.NotContains(t, srv.Stderr(), "level=ERROR")
}

// TestPutRetriesThrottledRecords puts more records into one shard than its
// write limit allows per second: the throttled records must be retried
// until every one is delivered.
func TestPutRetriesThrottledRecords(t *testing.T) {
	t.Parallel()
	bin := runneltest.Binary(t)
	srv := startServer(t, "--shard-write-limits")
	rn := &runnelCLI{t: t, bin: bin, endpoint: srv.URL, env: clientEnv(t)}
	const name, n = "throttled", 2500
	rn.run(nil, "stream", "create", name)

	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "record-%05d\n", i)
	}
	put := rn.run(strings.NewReader(in.String()), "put", name, "--key", "one-shard")
	require.Regexp(t, fmt.Sprintf(`sent %d records, 0 failed \(the stream throttled \d+ sends; they were retried\)`, n), put.stderr, "the shard limit was reached")

	tail := rn.run(nil, "tail", name, "--no-follow", "--from", "trim-horizon")
	got := strings.Split(strings.TrimSuffix(tail.stdout, "\n"), "\n")
	require.Len(t, got, n)
	seen := map[string]bool{}
	for _, l := range got {
		seen[l] = true
	}
	require.Len(t, seen, n, "every record arrives exactly once")
}

// requireHashSpaceCovered checks that shards, as the Kinesis JSON shows
// them, split the 128-bit hash-key space without gaps or overlaps.
func requireHashSpaceCovered(t *testing.T, shards []any) {
	t.Helper()
	type span struct{ lo, hi *big.Int }
	var spans []span
	for _, s := range shards {
		r := s.(map[string]any)["HashKeyRange"].(map[string]any)
		lo, ok1 := new(big.Int).SetString(r["StartingHashKey"].(string), 10)
		hi, ok2 := new(big.Int).SetString(r["EndingHashKey"].(string), 10)
		require.True(t, ok1 && ok2)
		spans = append(spans, span{lo, hi})
	}
	slices.SortFunc(spans, func(a, b span) int { return a.lo.Cmp(b.lo) })
	next := big.NewInt(0)
	for _, s := range spans {
		require.Zero(t, s.lo.Cmp(next), "shard starts where the previous one ends")
		next = new(big.Int).Add(s.hi, big.NewInt(1))
	}
	require.Zero(t, next.Cmp(new(big.Int).Lsh(big.NewInt(1), 128)), "shards reach the top of the hash-key space")
}

// tailProc is a `runnel tail` running in the background.
type tailProc struct {
	cmd      *exec.Cmd
	out, log runneltest.SyncBuffer
}

func startTail(t *testing.T, rn *runnelCLI, name string) *tailProc {
	t.Helper()
	p := &tailProc{}
	p.cmd = exec.Command(rn.bin, "--endpoint", rn.endpoint, "tail", name, "--from", "latest", "--poll-interval", "50ms", "--log-level", "debug")
	p.cmd.Env = rn.env
	p.cmd.Stdout = &p.out
	p.cmd.Stderr = &p.log
	require.NoError(t, p.cmd.Start())
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	return p
}

// waitFor polls until cond holds, for at most a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *tailProc) interrupt(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(os.Interrupt))
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "tail exits cleanly on SIGINT; stderr:\n%s", p.log.String())
	case <-time.After(30 * time.Second):
		t.Fatal("tail did not stop within 30s of SIGINT")
	}
}
