package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/app"
	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/producer/producertest"
	"github.com/runnel-dev/runnel/internal/runneltest"
)

// runProduce runs `runnel produce ARGS...` and returns its exit code,
// standard output and standard error.
func runProduce(ctx context.Context, stdin io.Reader, args ...string) (int, string, string) {
	var stdout, stderr runneltest.SyncBuffer
	e := &env{stdin: stdin, stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }, serve: app.Run}
	code := e.main(ctx, append([]string{"produce"}, args...))
	return code, stdout.String(), stderr.String()
}

func summaryOf(t *testing.T, stdout string) produceSummary {
	t.Helper()
	var s produceSummary
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(stdout)), &s), "summary: %q", stdout)
	return s
}

// testRow is one row of the test files.
type testRow struct {
	Country string `json:"country"`
	Seq     string `json:"seq"`
	Note    string `json:"note"`
}

func testRows(n int) []testRow {
	countries := []string{"FR", "DE", "US", "JP", "BR", "NG", "IN"}
	rows := make([]testRow, n)
	for i := range rows {
		rows[i] = testRow{Country: countries[i%len(countries)], Seq: strconv.Itoa(i), Note: fmt.Sprintf("row %d, with \"quotes\" and commas", i)}
	}
	return rows
}

func writeTestFile(t *testing.T, dir, name string, rows []testRow) string {
	t.Helper()
	var b bytes.Buffer
	format := strings.TrimSuffix(name, ".gz")
	switch filepath.Ext(format) {
	case ".csv":
		b.WriteString("country,seq,note\n")
		for _, r := range rows {
			fmt.Fprintf(&b, "%s,%s,\"%s\"\n", r.Country, r.Seq, strings.ReplaceAll(r.Note, `"`, `""`))
		}
	case ".tsv":
		b.WriteString("country\tseq\tnote\n")
		for _, r := range rows {
			fmt.Fprintf(&b, "%s\t%s\t%s\n", r.Country, r.Seq, r.Note)
		}
	case ".jsonl":
		for _, r := range rows {
			line, err := json.Marshal(r)
			require.NoError(t, err)
			b.Write(append(line, '\n'))
		}
	}
	data := b.Bytes()
	if strings.HasSuffix(name, ".gz") {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		_, err := zw.Write(data)
		require.NoError(t, err)
		require.NoError(t, zw.Close())
		data = z.Bytes()
	}
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, data, 0o644))
	return path
}

// requireRowsInOrder asserts the stream holds exactly rows, each once, in
// file order per partition key, keyed by country.
func requireRowsInOrder(t *testing.T, recs []types.Record, rows []testRow) {
	t.Helper()
	require.Len(t, recs, len(rows))
	last := map[string]int{}
	seen := map[int]bool{}
	for _, r := range recs {
		var got testRow
		require.NoError(t, json.Unmarshal(r.Data, &got), "%s", r.Data)
		i, err := strconv.Atoi(got.Seq)
		require.NoError(t, err)
		require.Equal(t, rows[i], got)
		require.Equal(t, got.Country, aws.ToString(r.PartitionKey))
		require.False(t, seen[i], "row %d twice", i)
		seen[i] = true
		if prev, ok := last[got.Country]; ok {
			require.Greater(t, i, prev, "key %s out of order", got.Country)
		}
		last[got.Country] = i
	}
}

func TestProduceFileReplaysEveryRecordInOrderPerKey(t *testing.T) {
	t.Parallel()
	rows := testRows(3000)
	for _, name := range []string{"events.csv", "events.tsv", "events.jsonl", "events.csv.gz", "events.jsonl.gz"} {
		t.Run(name, func(t *testing.T) {
			srv := kinesistest.Start(t)
			c := srv.Client(t)
			producertest.CreateStream(t, c, "replay", 3)
			path := writeTestFile(t, t.TempDir(), name, rows)
			code, stdout, stderr := runProduce(t.Context(), nil, "file", path, "replay", "--key", "country", "--ordered", "--json", "--endpoint", srv.URL)
			require.Equal(t, 0, code, stderr)
			s := summaryOf(t, stdout)
			require.Equal(t, int64(len(rows)), s.Delivered)
			require.Zero(t, s.Failed)
			require.Equal(t, srv.URL, s.Endpoint)
			requireRowsInOrder(t, producertest.ReadAll(t, c, "replay"), rows)
		})
	}
}

func TestProduceFileFromGzippedStandardInput(t *testing.T) {
	srv := kinesistest.Start(t)
	c := srv.Client(t)
	producertest.CreateStream(t, c, "in", 1)
	rows := testRows(500)
	path := writeTestFile(t, t.TempDir(), "x.csv.gz", rows)
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	code, _, stderr := runProduce(t.Context(), f, "file", "-", "--format", "csv", "--stream", "in", "--key", "country", "--ordered", "--endpoint", srv.URL)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "500 delivered, 0 failed")
	requireRowsInOrder(t, producertest.ReadAll(t, c, "in"), rows)
}

func TestProduceFileMalformedLines(t *testing.T) {
	srv := kinesistest.Start(t)
	c := srv.Client(t)
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "bad.csv")
	require.NoError(t, os.WriteFile(csvPath, []byte("a,b\n1,x\n2,y\n3\n4,z\n"), 0o644))
	jsonPath := filepath.Join(dir, "bad.jsonl")
	require.NoError(t, os.WriteFile(jsonPath, []byte("{\"a\":1}\n\n{\"a\":2,}\n{\"a\":3}\n"), 0o644))

	cases := []struct {
		name, path, onError string
		wantCode            int
		wantErr             string
		wantData            []string
	}{
		{"csv fail", csvPath, "fail", 1, csvPath + ":4: 1 columns, want 2 (a, b)", []string{`{"a":"1","b":"x"}`, `{"a":"2","b":"y"}`}},
		{"csv skip", csvPath, "skip", 0, "skipping " + csvPath + ":4: 1 columns, want 2 (a, b)", []string{`{"a":"1","b":"x"}`, `{"a":"2","b":"y"}`, `{"a":"4","b":"z"}`}},
		{"jsonl fail", jsonPath, "fail", 1, jsonPath + ":3: bad JSON", []string{`{"a":1}`}},
		{"jsonl skip", jsonPath, "skip", 0, "skipping " + jsonPath + ":3: bad JSON", []string{`{"a":1}`, `{"a":3}`}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stream := "bad" + strconv.Itoa(i)
			producertest.CreateStream(t, c, stream, 1)
			code, stdout, stderr := runProduce(t.Context(), nil, "file", tc.path, stream, "--on-error", tc.onError, "--json", "--endpoint", srv.URL)
			require.Equal(t, tc.wantCode, code, stderr)
			require.Contains(t, stderr, tc.wantErr)
			s := summaryOf(t, stdout)
			require.Equal(t, int64(len(tc.wantData)), s.Delivered)
			if tc.onError == "skip" {
				require.Equal(t, int64(1), s.Skipped)
			}
			var got []string
			for _, r := range producertest.ReadAll(t, c, stream) {
				got = append(got, string(r.Data))
			}
			require.Equal(t, tc.wantData, got)
		})
	}
}

func TestProduceMissingStreamNamesStreamAndEndpoint(t *testing.T) {
	srv := kinesistest.Start(t)
	code, _, stderr := runProduce(t.Context(), nil, "random", "nope", "--count", "5", "--endpoint", srv.URL)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, fmt.Sprintf(`stream "nope" does not exist at %s`, srv.URL))
}

func TestProduceUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"random"},
		{"random", "s", "--to", "kafka"},
		{"random", "s", "--stream", "t"},
		{"file", "x.csv", "s", "--on-error", "ignore"},
		{"file", "-", "s", "--loop"},
		{"file", "x.csv", "s", "--format", "xml"},
		{"sensor", "s", "--interval", "-1s"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, _, stderr := runProduce(t.Context(), nil, args...)
			require.Equal(t, exitUsage, code, stderr)
		})
	}
}

func TestProduceRandom(t *testing.T) {
	t.Parallel()
	srv := kinesistest.Start(t)
	c := srv.Client(t)
	producertest.CreateStream(t, c, "r", 2)
	code, stdout, stderr := runProduce(t.Context(), nil, "random", "--stream", "r", "--count", "1000", "--countries", "FR,DE", "--event-types", "view,buy", "--key", "country", "--json", "--endpoint", srv.URL)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, int64(1000), summaryOf(t, stdout).Delivered)
	recs := producertest.ReadAll(t, c, "r")
	require.Len(t, recs, 1000)
	ids := map[string]bool{}
	for _, r := range recs {
		var ev map[string]any
		require.NoError(t, json.Unmarshal(r.Data, &ev))
		require.Contains(t, []string{"FR", "DE"}, ev["country"])
		require.Contains(t, []string{"view", "buy"}, ev["eventType"])
		require.Equal(t, ev["country"], aws.ToString(r.PartitionKey))
		_, err := time.Parse(time.RFC3339, ev["timestamp"].(string))
		require.NoError(t, err)
		v := ev["value"].(float64)
		require.True(t, v > 0 && v <= 1000, "value %v", v)
		id := ev["id"].(string)
		require.Len(t, id, 36)
		require.False(t, ids[id])
		ids[id] = true
	}
}

func TestProduceSensorToStdout(t *testing.T) {
	code, stdout, stderr := runProduce(t.Context(), nil, "sensor", "--to", "stdout", "--name", "Rocinante", "--name", "Shadowfax", "--interval", "1ms", "--count", "10")
	require.Equal(t, 0, code, stderr)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Len(t, lines, 10)
	for i, l := range lines {
		var line struct {
			PartitionKey string
			Data         struct {
				Name                      string
				StatusTime                string
				Latitude, Longitude       float64
				Distance                  float64
				HealthPoints, MagicPoints int
			}
		}
		require.NoError(t, json.Unmarshal([]byte(l), &line), l)
		want := []string{"Rocinante", "Shadowfax"}[i%2]
		require.Equal(t, want, line.PartitionKey)
		require.Equal(t, want, line.Data.Name)
		_, err := time.Parse("2006-01-02 15:04:05.000", line.Data.StatusTime)
		require.NoError(t, err)
		require.InDelta(t, 40.75, line.Data.Latitude, 0.05)
		require.InDelta(t, -73.98, line.Data.Longitude, 0.05)
		require.InDelta(t, 0.03, line.Data.Distance, 0.011) // 30 m/s for 1 ms
		require.InDelta(t, 150, line.Data.HealthPoints, 10)
		require.InDelta(t, 150, line.Data.MagicPoints, 10)
	}
	require.Contains(t, stderr, "10 delivered, 0 failed")
}

func TestProduceInterruptFlushesAndReports(t *testing.T) {
	t.Parallel()
	srv := kinesistest.Start(t)
	c := srv.Client(t)
	producertest.CreateStream(t, c, "live", 2)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type result struct {
		code           int
		stdout, stderr string
	}
	done := make(chan result, 1)
	go func() {
		code, stdout, stderr := runProduce(ctx, nil, "random", "live", "--rate", "2000", "--json", "--endpoint", srv.URL)
		done <- result{code, stdout, stderr}
	}()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		out, err := c.DescribeStreamSummary(t.Context(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("live")})
		require.NoError(ct, err)
		require.NotNil(ct, out)
		require.GreaterOrEqual(ct, len(producertest.ReadAll(t, c, "live")), 200)
	}, 20*time.Second, 50*time.Millisecond)
	cancel()
	var res result
	select {
	case res = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("produce did not stop after the interrupt")
	}
	require.Equal(t, 0, res.code, res.stderr)
	s := summaryOf(t, res.stdout)
	require.True(t, s.Interrupted)
	require.Zero(t, s.Failed)
	require.Equal(t, s.Queued, s.Delivered, "everything buffered was flushed")
	require.Len(t, producertest.ReadAll(t, c, "live"), int(s.Delivered))
}

func TestProduceWritesRecordsGivenUpOnToFailedFile(t *testing.T) {
	t.Parallel()
	url := producertest.StartLimited(t)
	c := kinesistest.NewClient(url)
	producertest.CreateStream(t, c, "tight", 1)
	dir := t.TempDir()
	failedPath := filepath.Join(dir, "failed.jsonl")
	// 600 events of 4 KiB, sent unpaced: the first call carries 500 of
	// them, 2 MiB, twice the one-second burst of a shard taking 1 MiB/s,
	// so part of it is throttled however fast or slow the machine (a
	// linger of a second leaves no partial first batch; paced, the
	// producer would keep under the limit). A throttled record may be retried
	// only for a millisecond after its first send, less than the call
	// answering it takes: those are given up on.
	const n = 600
	var events strings.Builder
	pad := strings.Repeat("x", 4<<10)
	for i := range n {
		fmt.Fprintf(&events, `{"id":"e%d","pad":%q}`+"\n", i, pad)
	}
	file := filepath.Join(dir, "events.jsonl")
	require.NoError(t, os.WriteFile(file, []byte(events.String()), 0o644))
	code, stdout, stderr := runProduce(t.Context(), nil, "file", file, "--stream", "tight", "--key", "id", "--max-retry-time", "1ms", "--linger", "1s", "--pace=false", "--failed-file", failedPath, "--json", "--endpoint", url)
	require.Equal(t, 1, code, stderr)
	require.Contains(t, stderr, "records could not be delivered")
	s := summaryOf(t, stdout)
	require.Positive(t, s.Failed)
	require.Equal(t, int64(n), s.Delivered+s.Failed)
	b, err := os.ReadFile(failedPath)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	require.Len(t, lines, int(s.Failed))
	var fl struct {
		PartitionKey string
		Data         map[string]any
		Error        string
	}
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &fl))
	require.Equal(t, fl.Data["id"], fl.PartitionKey)
	require.Contains(t, fl.Error, `stream "tight" at `+url+": giving up after 1 attempts")
	require.Contains(t, fl.Error, "ProvisionedThroughputExceededException")
	require.Len(t, producertest.ReadAll(t, c, "tight"), int(s.Delivered))
}
