package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/producer/producertest"
	"github.com/runnel-dev/runnel/internal/runneltest"
	"github.com/runnel-dev/runnel/internal/testserver"
)

func TestMain(m *testing.M) { runneltest.Main(m) }

// archived returns how often each record id occurs in the objects under
// dir (JSON lines or Parquet).
func archived(t *testing.T, dir string) (map[int]int, int) {
	t.Helper()
	counts := map[int]int{}
	files := objectFiles(t, dir)
	for _, p := range files {
		if strings.HasSuffix(p, ".parquet") {
			rows, err := parquet.ReadFile[struct {
				ID *int64 `parquet:"id,optional"`
			}](p)
			require.NoError(t, err, p)
			for _, r := range rows {
				require.NotNil(t, r.ID, p)
				counts[int(*r.ID)]++
			}
			continue
		}
		raw, err := os.ReadFile(p)
		require.NoError(t, err)
		for _, l := range objectLines(t, p, raw) {
			var rec struct{ ID int }
			require.NoError(t, json.Unmarshal([]byte(l), &rec), l)
			counts[rec.ID]++
		}
	}
	return counts, len(files)
}

// spooledSegments counts the segment files in the spool.
func spooledSegments(t *testing.T, spool string) int {
	t.Helper()
	n := 0
	_ = filepath.WalkDir(spool, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".seg") {
			n++
		}
		return nil
	})
	return n
}

// TestArchiveKillDuringRun runs runnel serve and runnel run (an archive
// pipeline to a directory) as processes, kills runnel run with SIGKILL
// at random points while records keep arriving, restarts it, and checks
// at the end that every record is in exactly one object. With
// RUNNEL_ARCHIVE_CRASH_LOGS set to a directory, each run's debug log (and,
// on failure, the archive) is kept there.
func TestArchiveKillDuringRun(t *testing.T) {
	t.Parallel()
	testKillDuringRun(t, "jsonl")
}

// TestArchiveParquetKillDuringRun is TestArchiveKillDuringRun writing
// Parquet, read at the end by DuckDB too.
func TestArchiveParquetKillDuringRun(t *testing.T) {
	t.Parallel()
	testKillDuringRun(t, "parquet")
}

// awsEnv gives runnel run credentials for the local server.
var awsEnv = []string{"AWS_ACCESS_KEY_ID=runnel", "AWS_SECRET_ACCESS_KEY=runnel", "AWS_EC2_METADATA_DISABLED=true"}

func testKillDuringRun(t *testing.T, format string) {
	if testing.Short() {
		t.Skip("builds and runs the runnel binary")
	}
	dir := t.TempDir()
	srv := runneltest.Serve(t, "--data-dir", filepath.Join(dir, "data"))
	url := srv.URL
	client := kinesistest.NewClient(url)

	lake := filepath.Join(dir, "lake")
	yml := fmt.Sprintf(`streams:
  - name: clicks
    shards: 3
pipelines:
  - name: lake
    source: clicks
    batchSize: 40
    handler:
      type: builtin
      name: archive
      options:
        dir: %q
        bufferSize: 3KiB
        bufferInterval: 1s
        prefixStyle: hive
        partitionBy: country
        format: %s
`, lake, format)
	cfgPath := filepath.Join(dir, "pipelines.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(yml), 0o644))
	stateDir := filepath.Join(dir, "state")
	spool := filepath.Join(lake, ".spool", "lake")

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	countries := []string{"DE", "FR", "US", "JP"}
	sent := 0
	put := func(n int) {
		t.Helper()
		for n > 0 {
			var entries []types.PutRecordsRequestEntry
			for range min(n, 100) {
				entries = append(entries, types.PutRecordsRequestEntry{
					PartitionKey: aws.String(fmt.Sprintf("user-%d", sent%97)),
					Data:         []byte(fmt.Sprintf(`{"id":%d,"country":%q,"pad":%q}`, sent, countries[sent%len(countries)], strings.Repeat("x", sent%50))),
				})
				sent++
			}
			outp, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("clicks"), Records: entries})
			require.NoError(t, err)
			require.Zero(t, aws.ToInt32(outp.FailedRecordCount))
			n -= len(entries)
		}
	}

	const rounds = 5
	killedWithSpool := 0
	for round := range rounds {
		run := runneltest.Start(t, awsEnv, "--endpoint", url, "--log-level", "debug", "run", cfgPath, "--state-dir", stateDir)
		if round == 0 {
			// runnel run creates the stream.
			require.Eventually(t, func() bool {
				d, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("clicks")})
				return err == nil && d.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive
			}, 60*time.Second, 20*time.Millisecond)
		}
		put(1500)
		// Kill once the run has archived a random part of what is there.
		before, _ := archived(t, lake)
		want := len(before) + 100 + rand.IntN(1000)
		deadline := time.Now().Add(60 * time.Second)
		for {
			got, _ := archived(t, lake)
			if len(got) >= want || len(got) >= sent {
				break
			}
			select {
			case <-run.Done():
				t.Fatalf("runnel run exited: %v\n%s", run.Err(), run.Stderr())
			case <-time.After(time.Duration(rand.IntN(30)) * time.Millisecond):
			}
			require.False(t, time.Now().After(deadline), "round %d: %d of %d records archived within 60s\n%s", round, len(got), want, run.Stderr())
		}
		run.Kill()
		if d := os.Getenv("RUNNEL_ARCHIVE_CRASH_LOGS"); d != "" {
			_ = os.WriteFile(filepath.Join(d, fmt.Sprintf("run-%d.log", round)), []byte(run.Stderr()), 0o644)
		}
		for _, l := range strings.Split(run.Stderr(), "\n") {
			if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
				t.Logf("round %d: %s", round, l)
			}
		}
		segs := spooledSegments(t, spool)
		if segs > 0 {
			killedWithSpool++
		}
		got, objects := archived(t, lake)
		t.Logf("round %d: killed with %d of %d records in %d objects, %d spool segments", round, len(got), sent, objects, segs)
	}
	require.Positive(t, killedWithSpool, "some kill left acknowledged records in the spool")

	// A last run without a kill archives the rest; SIGTERM writes out the
	// spool.
	run := runneltest.Start(t, awsEnv, "--endpoint", url, "--log-level", "debug", "run", cfgPath, "--state-dir", stateDir)
	deadline := time.Now().Add(90 * time.Second)
	for {
		got, _ := archived(t, lake)
		if len(got) == sent {
			break
		}
		select {
		case <-run.Done():
			t.Fatalf("runnel run exited: %v\n%s", run.Err(), run.Stderr())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			var missing []string
			for i := range sent {
				if got[i] == 0 {
					missing = append(missing, strconv.Itoa(i))
				}
			}
			if d := os.Getenv("RUNNEL_ARCHIVE_CRASH_LOGS"); d != "" {
				_ = os.WriteFile(filepath.Join(d, "run-final.log"), []byte(run.Stderr()), 0o644)
				_ = exec.Command("cp", "-r", lake, d).Run()
			}
			t.Fatalf("%d of %d records archived within 90s; missing ids %v; %d spool segments\n%s", len(got), sent, missing, spooledSegments(t, spool), run.Stderr())
		}
	}
	if err := run.Stop(60 * time.Second); errors.Is(err, runneltest.ErrStillRunning) {
		t.Fatal("runnel run did not stop within 60s of SIGTERM")
	}

	counts, objects := archived(t, lake)
	require.Len(t, counts, sent)
	// Each record in the stream is in exactly one object. A put the SDK
	// resent after losing its answer stores its data twice: two records.
	inStream := map[int]int{}
	for _, r := range producertest.ReadAll(t, client, "clicks") {
		var rec struct{ ID int }
		require.NoError(t, json.Unmarshal(r.Data, &rec), string(r.Data))
		inStream[rec.ID]++
	}
	for i := range sent {
		require.Equal(t, inStream[i], counts[i], "record %d is in %d objects and %d times in the stream", i, counts[i], inStream[i])
	}
	if format == "parquet" {
		inStreamTotal := 0
		for _, n := range inStream {
			inStreamTotal += n
		}
		rows := testserver.DuckDB(t, "SELECT count(*) AS n, count(DISTINCT id) AS ids, "+
			"count(*) FILTER (WHERE country <> regexp_extract(filename, 'country=([^/]+)/', 1)) AS misplaced FROM "+parquetGlob(lake))
		require.Equal(t, map[string]any{"n": float64(inStreamTotal), "ids": float64(sent), "misplaced": 0.0}, rows[0])
	}
	require.Zero(t, spooledSegments(t, spool), "the spool is empty after a graceful stop")
	t.Logf("%d records in %d objects after %d kills", sent, objects, rounds)
}
