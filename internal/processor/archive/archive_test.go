package archive

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/lambda"
)

// seqBase makes sequence numbers of the realistic length (56 digits).
var seqBase, _ = new(big.Int).SetString("49590338271490256608559692538361571095921575989136588898", 10)

func seqOf(i int) string { return new(big.Int).Add(seqBase, big.NewInt(int64(i)*7)).String() }

// events returns records from..to-1 of a shard; data is what gen returns.
func events(shard string, from, to int, arrival time.Time, gen func(i int) string) *lambda.KinesisEvent {
	ev := &lambda.KinesisEvent{}
	for i := from; i < to; i++ {
		seq := seqOf(i)
		ev.Records = append(ev.Records, lambda.KinesisEventRecord{
			EventID: shard + ":" + seq,
			Kinesis: lambda.KinesisRecord{
				PartitionKey: fmt.Sprintf("k%d", i%7), SequenceNumber: seq, Data: []byte(gen(i)),
				ApproximateArrivalTimestamp: float64(arrival.UnixMilli()) / 1000,
			},
		})
	}
	return ev
}

type object struct {
	key   string
	lines []string
}

// objectFiles returns the path of every object under dir (outside .spool,
// and not the table definition's _ files).
func objectFiles(t testing.TB, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && p != dir {
			return filepath.SkipDir
		}
		if !d.IsDir() && !strings.HasPrefix(d.Name(), ".") && !strings.HasPrefix(d.Name(), "_") {
			files = append(files, p)
		}
		return nil
	})
	require.NoError(t, err)
	return files
}

// readObjects returns every object under dir (outside .spool), by key.
func readObjects(t testing.TB, dir string) map[string]object {
	t.Helper()
	out := map[string]object{}
	for _, p := range objectFiles(t, dir) {
		rel, _ := filepath.Rel(dir, p)
		raw, err := os.ReadFile(p)
		require.NoError(t, err)
		out[filepath.ToSlash(rel)] = object{key: filepath.ToSlash(rel), lines: objectLines(t, rel, raw)}
	}
	return out
}

// failedRecord is an error record with the object it is in and its data.
type failedRecord struct {
	errorRecord
	key, data string
}

// errorRecords returns the error records in the objects under dir whose
// keys start with prefix, in sequence order.
func errorRecords(t testing.TB, dir, prefix string) []failedRecord {
	t.Helper()
	var out []failedRecord
	for key, o := range readObjects(t, dir) {
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		for _, l := range o.lines {
			var r failedRecord
			require.NoError(t, json.Unmarshal([]byte(l), &r.errorRecord), l)
			data, err := base64.StdEncoding.DecodeString(r.RawData)
			require.NoError(t, err)
			r.key, r.data = key, string(data)
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return position{seq: out[i].SequenceNumber}.less(position{seq: out[j].SequenceNumber})
	})
	return out
}

func objectLines(t testing.TB, key string, raw []byte) []string {
	t.Helper()
	var r io.Reader = bytes.NewReader(raw)
	if strings.HasSuffix(key, ".gz") {
		zr, err := gzip.NewReader(r)
		require.NoError(t, err, key)
		r = zr
	}
	if strings.HasSuffix(key, ".zst") {
		zr, err := zstd.NewReader(r)
		require.NoError(t, err, key)
		defer zr.Close()
		r = zr
	}
	var lines []string
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	require.NoError(t, sc.Err(), key)
	return lines
}

func newArchive(t *testing.T, options map[string]any, opts Options) *Archive {
	t.Helper()
	cfg, err := ParseConfig(options, "test")
	require.NoError(t, err)
	a, err := New(context.Background(), cfg, opts)
	require.NoError(t, err)
	return a
}

// TestArchiveJSONLZstd: compression zstd writes .jsonl.zst objects that
// hold every record once.
func TestArchiveJSONLZstd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := newArchive(t, map[string]any{"dir": dir, "compression": "zstd", "bufferSize": 500}, Options{})
	gen := func(i int) string { return fmt.Sprintf(`{"n":%d}`, i) }
	for from := 0; from < 120; from += 40 {
		_, err := a.Invoke(context.Background(), events("shardId-000000000002", from, from+40, time.Now(), gen))
		require.NoError(t, err)
	}
	require.NoError(t, a.Close(context.Background()))
	objs := readObjects(t, dir)
	require.Greater(t, len(objs), 1)
	seen := map[string]int{}
	for key, o := range objs {
		require.Regexp(t, `^\d{4}/\d\d/\d\d/\d\d/shardId-000000000002-\d+-\d+\.jsonl\.zst$`, key)
		for _, l := range o.lines {
			seen[l]++
		}
	}
	require.Len(t, seen, 120)
	for l, n := range seen {
		require.Equal(t, 1, n, l)
	}
	_, err := ParseConfig(map[string]any{"dir": dir, "compression": "zstd", "gzip": true}, "x")
	require.ErrorContains(t, err, "conflicts with compression: zstd")
}

func TestArchiveDirHivePartitioned(t *testing.T) {
	dir := t.TempDir()
	a := newArchive(t, map[string]any{
		"dir": dir, "prefixStyle": "hive", "partitionBy": "country", "timeField": "ts", "bufferSize": 600,
	}, Options{})
	countries := []string{"DE", "FR", "US"}
	gen := func(i int) string {
		switch i {
		case 13:
			return "not json"
		case 14:
			return `{"n":14,"country":"DE"}` // no ts
		case 15:
			return `{"n":15,"ts":"2024-03-01T10:59:59Z"}` // no country
		}
		hour := 10 + i%2
		return fmt.Sprintf(`{"n":%d,"country":%q,"ts":"2024-03-01T%02d:15:00Z"}`, i, countries[i%3], hour)
	}
	ctx := context.Background()
	for from := 0; from < 100; from += 25 {
		resp, err := a.Invoke(ctx, events("shardId-000000000001", from, from+25, time.Now(), gen))
		require.NoError(t, err)
		require.Nil(t, resp)
	}
	require.NoError(t, a.Close(ctx))
	failed := errorRecords(t, dir, "errors/")
	require.Len(t, failed, 2, "the record that is not JSON and the one without ts go to the error prefix")
	require.Equal(t, "not json", failed[0].data)
	require.Equal(t, ErrorPartitioning, failed[0].ErrorCode)
	require.Contains(t, failed[0].ErrorMessage, "not a JSON object")
	require.Equal(t, `{"n":14,"country":"DE"}`, failed[1].data)
	require.Contains(t, failed[1].ErrorMessage, `time field "ts" is missing`)
	require.Regexp(t, `^errors/partitioning-failed/\d{4}/\d\d/\d\d/shardId-000000000001-\d{56}-\d{56}\.jsonl$`, failed[0].key)
	require.EqualValues(t, 2, a.Stats().ErrorRecords)

	objs := readObjects(t, dir)
	seen := map[string]int{}
	for key, o := range objs {
		if strings.HasPrefix(key, "errors/") {
			continue
		}
		m := strings.Split(key, "/")
		require.Len(t, m, 4, key)
		require.Regexp(t, `^dt=2024-03-01$`, m[0])
		require.Regexp(t, `^hour=1[01]$`, m[1])
		require.Regexp(t, `^country=(DE|FR|US|__HIVE_DEFAULT_PARTITION__)$`, m[2])
		require.Regexp(t, `^shardId-000000000001-[0-9]{56}-[0-9]{56}\.jsonl$`, m[3])
		first, last := seqOf(0), seqOf(0)
		for i, line := range o.lines {
			var n int
			_, err := fmt.Sscanf(line, `{"n":%d`, &n)
			require.NoError(t, err, line)
			seen[line]++
			if n != 15 {
				require.Contains(t, line, `"country":"`+strings.TrimPrefix(m[2], "country=")+`"`, "object %s holds one partition only", key)
				require.Contains(t, line, fmt.Sprintf("T%s:", strings.TrimPrefix(m[1], "hour=")), key)
			}
			if i == 0 {
				first = seqOf(n)
			}
			last = seqOf(n)
		}
		require.True(t, strings.HasSuffix(m[3], "-"+first+"-"+last+".jsonl"), "%s is named after its first and last record (%s, %s)", key, first, last)
	}
	require.Len(t, seen, 98)
	for line, n := range seen {
		require.Equal(t, 1, n, line)
	}
	st := a.Stats()
	require.EqualValues(t, 100, st.Records, "98 records and 2 error records")
	require.Greater(t, st.Objects, int64(8), "a 600-byte buffer cuts several objects per partition")

	// The dashboard's report: files, records and bytes, and the latest
	// files, each one that exists with its size.
	rep := a.Report()
	require.Equal(t, "archive: "+dir, rep.Title)
	figs := map[string]float64{}
	for _, f := range rep.Figures {
		figs[f.Label] = f.Value
	}
	require.EqualValues(t, st.Objects, figs["files"])
	require.EqualValues(t, 100, figs["records"])
	require.EqualValues(t, 2, figs["records under the error prefix"])
	require.EqualValues(t, st.Bytes, figs["written"])
	require.Len(t, rep.Recent, recentObjects)
	for i, o := range rep.Recent {
		fi, err := os.Stat(filepath.Join(dir, o.Name))
		require.NoError(t, err)
		require.Equal(t, fi.Size(), o.Bytes)
		if i > 0 {
			require.False(t, o.Time.After(rep.Recent[i-1].Time), "newest first")
		}
	}
}

func TestArchiveIntervalAndGzip(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	a := newArchive(t, map[string]any{"dir": dir, "gzip": true, "bufferInterval": "2s", "decode": map[string]any{"format": "raw"}},
		Options{Now: clock})
	defer a.Close(context.Background())
	arrival := time.Date(2024, 5, 6, 23, 59, 0, 0, time.UTC)
	_, err := a.Invoke(context.Background(), events("shardId-000000000000", 0, 10, arrival, func(i int) string { return fmt.Sprintf("line %d", i) }))
	require.NoError(t, err)
	require.Empty(t, readObjects(t, dir), "nothing is written before the interval")
	mu.Lock()
	now = now.Add(2 * time.Second)
	mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for len(readObjects(t, dir)) == 0 {
		require.False(t, time.Now().After(deadline), "no object written after the interval passed")
		<-time.After(10 * time.Millisecond)
	}
	objs := readObjects(t, dir)
	require.Len(t, objs, 1)
	for key, o := range objs {
		require.Equal(t, "2024/05/06/23/shardId-000000000000-"+seqOf(0)+"-"+seqOf(9)+".jsonl.gz", key)
		require.Equal(t, "line 0", o.lines[0])
		require.Len(t, o.lines, 10)
	}
}

// TestArchiveRecoversAfterCrash abandons an archive without closing it (as
// a kill would), starts another on the same spool, delivers again from an
// older checkpoint and checks every record is in exactly one object.
func TestArchiveRecoversAfterCrash(t *testing.T) {
	dir := t.TempDir()
	gen := func(i int) string { return fmt.Sprintf(`{"n":%d}`, i) }
	opts := map[string]any{"dir": dir, "bufferSize": 300}
	a := newArchive(t, opts, Options{})
	for from := 0; from < 60; from += 10 {
		_, err := a.Invoke(context.Background(), events("shardId-000000000000", from, from+10, time.Now(), gen))
		require.NoError(t, err)
	}
	// The last batch was spooled but, as if the process died before the
	// checkpoint, a torn frame follows it in its segment.
	a.crash()
	a.shardList()[0].mu.Lock()
	for _, seg := range a.shardList()[0].open {
		f, err := os.OpenFile(seg.file, os.O_WRONLY|os.O_APPEND, 0)
		require.NoError(t, err)
		_, err = f.Write([]byte{40, 1, 2, 3})
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
	a.shardList()[0].mu.Unlock()

	b := newArchive(t, opts, Options{})
	// The runtime resumes from its last checkpoint, say record 30.
	for from := 30; from < 90; from += 10 {
		_, err := b.Invoke(context.Background(), events("shardId-000000000000", from, from+10, time.Now(), gen))
		require.NoError(t, err)
	}
	require.NoError(t, b.Close(context.Background()))
	require.EqualValues(t, 30, b.Stats().Skipped)
	counts := map[string]int{}
	for _, o := range readObjects(t, dir) {
		for _, l := range o.lines {
			counts[l]++
		}
	}
	require.Len(t, counts, 90)
	for l, n := range counts {
		require.Equal(t, 1, n, l)
	}
	entries, err := os.ReadDir(filepath.Join(dir, ".spool", "test", "shardId-000000000000"))
	require.NoError(t, err)
	var left []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".seg") {
			left = append(left, e.Name())
		}
	}
	require.Empty(t, left, "everything spooled was written at close")
}

// TestArchiveCutsUncommittedBatch spools a batch into one of its
// partitions' segments only, as a kill between the segments' syncs would
// leave it, and checks the batch, delivered again, lands whole and once.
func TestArchiveCutsUncommittedBatch(t *testing.T) {
	dir := t.TempDir()
	gen := func(i int) string { return fmt.Sprintf(`{"n":%d,"country":"%s"}`, i, []string{"DE", "FR", "US"}[i%3]) }
	opts := map[string]any{"dir": dir, "partitionBy": "country"}
	a := newArchive(t, opts, Options{})
	_, err := a.Invoke(context.Background(), events("shardId-000000000000", 0, 30, time.Now(), gen))
	require.NoError(t, err)
	a.crash()
	// Records 30..39 reached the DE segment only.
	s := a.shardList()[0]
	var de *segment
	for path, seg := range s.open {
		if strings.Contains(path, "country=DE") {
			de = seg
		}
	}
	require.NotNil(t, de)
	var frames []byte
	for _, r := range events("shardId-000000000000", 30, 40, time.Now(), gen).Records {
		if strings.Contains(string(r.Kinesis.Data), "DE") {
			frames = appendFrame(frames, spoolRecord{pos: position{seq: r.Kinesis.SequenceNumber, sub: -1}, data: r.Kinesis.Data})
		}
	}
	f, err := os.OpenFile(de.file, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write(frames)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	b := newArchive(t, opts, Options{})
	_, err = b.Invoke(context.Background(), events("shardId-000000000000", 30, 40, time.Now(), gen))
	require.NoError(t, err)
	require.NoError(t, b.Close(context.Background()))
	counts := map[string]int{}
	for _, o := range readObjects(t, dir) {
		for _, l := range o.lines {
			counts[l]++
		}
	}
	require.Len(t, counts, 40)
	for l, n := range counts {
		require.Equal(t, 1, n, l)
	}
}

// crash stops the archive as a kill would: nothing more is written and the
// spool is left as it is.
func (a *Archive) crash() {
	a.closing.Store(true)
	a.cancel()
	<-a.done
	a.unlock()
}

func TestArchiveRefusesTwoBatchesOfOneShard(t *testing.T) {
	a := newArchive(t, map[string]any{"dir": t.TempDir()}, Options{})
	defer a.Close(context.Background())
	s, err := a.shard("shardId-000000000000")
	require.NoError(t, err)
	s.invoking.Lock()
	_, err = a.Invoke(context.Background(), events("shardId-000000000000", 0, 1, time.Now(), func(int) string { return "{}" }))
	s.invoking.Unlock()
	require.ErrorContains(t, err, "parallelization")
}

func TestSpoolLocked(t *testing.T) {
	dir := t.TempDir()
	a := newArchive(t, map[string]any{"dir": dir}, Options{})
	defer a.Close(context.Background())
	cfg, err := ParseConfig(map[string]any{"dir": dir}, "test")
	require.NoError(t, err)
	_, err = New(context.Background(), cfg, Options{})
	require.ErrorContains(t, err, "in use")
}

func TestPositionOrder(t *testing.T) {
	ps := []position{{"10", -1}, {"9", -1}, {"10", 2}, {"10", 0}, {"100", -1}, {"11", -1}}
	sort.Slice(ps, func(i, j int) bool { return ps[i].less(ps[j]) })
	var got []string
	for _, p := range ps {
		got = append(got, p.String())
	}
	require.Equal(t, []string{"9", "10", "10_0", "10_2", "11", "100"}, got)
	p, err := parsePosition("10_2")
	require.NoError(t, err)
	require.Equal(t, position{"10", 2}, p)
}

func TestEscapePartition(t *testing.T) {
	for in, want := range map[string]string{
		"DE": "DE", "": hiveDefault, "a/b": "a%2Fb", "..": "%2E%2E", "x y": "x%20y", "v1.2": "v1.2",
	} {
		require.Equal(t, want, escapePartition(in), in)
	}
}
