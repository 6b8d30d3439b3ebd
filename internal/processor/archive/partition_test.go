package archive

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/testserver"
)

// TestArchiveDynamicPartitioning partitions Parquet by an expression and
// the event time through a Firehose-style prefix; DuckDB reads the Hive
// partitions back. Records whose key cannot be computed, or that are not
// JSON, are under the error prefix with the reason.
func TestArchiveDynamicPartitioning(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := newArchive(t, map[string]any{
		"dir": dir, "format": "parquet", "timeField": "ts",
		"prefix":        "events/region=!{partitionKeyFromQuery:region}/dt=!{timestamp:yyyy-MM-dd}/",
		"partitionKeys": map[string]any{"region": `user.country in ["DE", "FR"] ? "eu" : user.country`},
		"errorPrefix":   "failed/!{firehose:error-output-type}/",
	}, Options{})
	countries := []string{"DE", "FR", "US", "JP"}
	gen := func(i int) string {
		switch {
		case i%50 == 7:
			return fmt.Sprintf(`{"n":%d,"ts":"2024-03-01T10:00:00Z"}`, i) // no user: no region
		case i%50 == 8:
			return "\x00\x01 binary"
		}
		return fmt.Sprintf(`{"n":%d,"user":{"country":%q},"ts":"2024-03-0%dT10:00:00Z"}`, i, countries[i%4], 1+i%3)
	}
	ctx := context.Background()
	for from := 0; from < 200; from += 40 {
		_, err := a.Invoke(ctx, events("shardId-000000000002", from, from+40, time.Now(), gen))
		require.NoError(t, err)
	}
	require.NoError(t, a.Close(ctx))

	failed := errorRecords(t, dir, "failed/")
	require.Len(t, failed, 8)
	for _, f := range failed {
		if strings.HasPrefix(f.data, "{") {
			require.Equal(t, ErrorPartitioning, f.ErrorCode)
			require.Regexp(t, `^failed/partitioning-failed/shardId-000000000002-`, f.key)
			require.Contains(t, f.ErrorMessage, "partition key region")
		} else {
			require.Equal(t, ErrorConversion, f.ErrorCode, "not JSON: no row to make")
			require.Regexp(t, `^failed/format-conversion-failed/shardId-000000000002-`, f.key)
			require.Equal(t, "\x00\x01 binary", f.data, "the data is kept as it was")
		}
	}

	want := map[string]int{}
	for i := range 200 {
		if i%50 != 7 && i%50 != 8 {
			region := map[string]string{"DE": "eu", "FR": "eu"}[countries[i%4]]
			if region == "" {
				region = countries[i%4]
			}
			want[fmt.Sprintf("%s 2024-03-0%d", region, 1+i%3)]++
		}
	}
	rows := testserver.DuckDB(t, fmt.Sprintf("SELECT region, CAST(dt AS VARCHAR) AS dt, count(*) AS n, count(DISTINCT n) AS d, "+
		"count(*) FILTER (WHERE left(ts, 10) <> CAST(dt AS VARCHAR)) AS misplaced "+
		"FROM read_parquet('%s/events/**/*.parquet', hive_partitioning = true) GROUP BY ALL ORDER BY ALL", filepath.ToSlash(dir)))
	got := map[string]int{}
	for _, r := range rows {
		require.Equal(t, r["n"], r["d"], "no record twice")
		require.Zero(t, r["misplaced"], r)
		got[fmt.Sprintf("%s %s", r["region"], r["dt"])] = int(r["n"].(float64))
	}
	require.Equal(t, want, got)
}

// TestArchiveRawRecords archives records that are not JSON as they are
// when nothing asks for fields: as Firehose delivers them.
func TestArchiveRawRecords(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := newArchive(t, map[string]any{"dir": dir, "prefix": "raw/!{timestamp:yyyy/MM/dd}/"}, Options{})
	gen := func(i int) string {
		if i%2 == 0 {
			return fmt.Sprintf("plain text %d", i)
		}
		return fmt.Sprintf(`{"n":%d}`, i)
	}
	ctx := context.Background()
	_, err := a.Invoke(ctx, events("shardId-000000000000", 0, 10, time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC), gen))
	require.NoError(t, err)
	require.NoError(t, a.Close(ctx))
	objs := readObjects(t, dir)
	require.Len(t, objs, 1)
	for key, o := range objs {
		require.Regexp(t, `^raw/2024/03/01/shardId-000000000000-\d+-\d+\.jsonl$`, key)
		require.Len(t, o.lines, 10)
		require.Equal(t, "plain text 0", o.lines[0])
		require.Equal(t, `{"n":1}`, o.lines[1])
	}
	require.Zero(t, a.Stats().ErrorRecords)
}

func TestPrefixConfigErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		options map[string]any
		want    string
	}{
		{map[string]any{"prefix": "x/!{partitionKeyFromQuery:a}/"}, "no partition key a in partitionKeys"},
		{map[string]any{"prefix": "x/", "partitionKeys": map[string]any{"a": "b"}}, "partitionKeys.a: is not used in prefix"},
		{map[string]any{"prefix": "x/!{timestamp:yyyy-MMM}/"}, `"MMM" is not one of`},
		{map[string]any{"prefix": "x/!{firehose:random-string}/"}, "only !{firehose:error-output-type}, in errorPrefix"},
		{map[string]any{"prefix": "x/!{nope:a}/"}, "the namespaces are timestamp and partitionKeyFromQuery"},
		{map[string]any{"prefix": "x/!{timestamp:yyyy"}, "unclosed"},
		{map[string]any{"prefix": "x/", "partitionBy": "a"}, "not both"},
		{map[string]any{"prefix": "x/!{partitionKeyFromQuery:a}/", "partitionKeys": map[string]any{"a": "1 +"}}, "partitionKeys.a:"},
		{map[string]any{"errorPrefix": "e/!{firehose:error-output-type"}, "errorPrefix"},
	} {
		opts := map[string]any{"dir": t.TempDir()}
		for k, v := range tc.options {
			opts[k] = v
		}
		_, err := ParseConfig(opts, "test")
		require.ErrorContains(t, err, tc.want, tc.options)
	}
}

// FuzzParsePrefix: any prefix either is refused or evaluates to a relative
// path with no control characters and no "." or ".." segment.
func FuzzParsePrefix(f *testing.F) {
	for _, s := range []string{"", "a/!{timestamp:yyyy/MM/dd}/", "x=!{partitionKeyFromQuery:k}/", "!{firehose:error-output-type}/!{timestamp:HH}", "!{", "a/../b", "/abs"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePrefix(s, true)
		if err != nil {
			return
		}
		keys := map[string]string{}
		for _, k := range p.keys() {
			keys[k] = escapePartition(k)
		}
		out := p.eval(time.Unix(1e9, 0), keys, ErrorConversion)
		if strings.HasPrefix(out, "/") || !safeSegments(out) || strings.ContainsFunc(out, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			t.Fatalf("%q evaluates to %q", s, out)
		}
	})
}
