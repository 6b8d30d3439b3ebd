package archive

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/testserver"
)

// TestArchiveS3 writes to a real S3-compatible server (versitygw) through
// the default credential chain, and reads the objects back with S3.
func TestArchiveS3(t *testing.T) {
	srv := testserver.S3(t)
	srv.Env(t)
	srv.CreateBucket(t, "lake")
	a := newArchive(t, map[string]any{
		"s3":          map[string]any{"bucket": "lake", "prefix": "raw/clicks/", "endpoint": srv.URL, "forcePathStyle": true},
		"spoolDir":    filepath.Join(t.TempDir(), "spool"),
		"partitionBy": "country", "gzip": true, "bufferSize": "1KiB",
	}, Options{})
	arrival := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	gen := func(i int) string { return fmt.Sprintf(`{"n":%d,"country":"%s"}`, i, []string{"DE", "FR"}[i%2]) }
	for from := 0; from < 200; from += 50 {
		_, err := a.Invoke(context.Background(), events("shardId-000000000003", from, from+50, arrival, gen))
		require.NoError(t, err)
	}
	require.NoError(t, a.Close(context.Background()))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := srv.Client()
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("lake"), Prefix: aws.String("raw/clicks/")})
	require.NoError(t, err)
	require.Greater(t, len(list.Contents), 2)
	seen := map[string]int{}
	for _, o := range list.Contents {
		key := aws.ToString(o.Key)
		require.Regexp(t, `^raw/clicks/2025/01/02/03/country=(DE|FR)/shardId-000000000003-[0-9]+-[0-9]+\.jsonl\.gz$`, key)
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("lake"), Key: o.Key})
		require.NoError(t, err)
		raw, err := io.ReadAll(out.Body)
		out.Body.Close()
		require.NoError(t, err)
		country := strings.TrimPrefix(strings.Split(key, "/")[6], "country=")
		for _, l := range objectLines(t, key, raw) {
			require.Contains(t, l, `"country":"`+country+`"`)
			seen[l]++
		}
	}
	require.Len(t, seen, 200)
	for l, n := range seen {
		require.Equal(t, 1, n, l)
	}
}

// TestArchiveS3Outage stops S3 while batches keep coming: the batches are
// acknowledged from the local spool, the writer keeps failing (counted in
// WriteErrors, logged) for well past one retry, and once S3 is back every
// event is archived exactly once.
func TestArchiveS3Outage(t *testing.T) {
	srv := testserver.S3(t)
	srv.Env(t)
	srv.CreateBucket(t, "lake")
	a := newArchive(t, map[string]any{
		"s3":             map[string]any{"bucket": "lake", "prefix": "raw/", "endpoint": srv.URL, "forcePathStyle": true},
		"spoolDir":       filepath.Join(t.TempDir(), "spool"),
		"bufferSize":     "1KiB",
		"bufferInterval": "1s",
	}, Options{})
	arrival := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	gen := func(i int) string { return fmt.Sprintf(`{"n":%d,"pad":"%040d"}`, i, i) }
	invoke := func(from, to int) {
		for ; from < to; from += 25 {
			_, err := a.Invoke(context.Background(), events("shardId-000000000001", from, from+25, arrival, gen))
			require.NoError(t, err)
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			require.False(t, time.Now().After(deadline), "%s: %+v", what, a.Stats())
			<-time.After(50 * time.Millisecond)
		}
	}
	invoke(0, 100)
	waitFor("first objects written", func() bool { return a.Stats().Records > 0 })

	srv.Stop(t)
	down := time.Now()
	invoke(100, 400)
	waitFor("writes failing for a while", func() bool { return a.Stats().WriteErrors >= 3 && time.Since(down) > 3*time.Second })
	srv.Start(t)
	waitFor("every record archived", func() bool { st := a.Stats(); return st.Records >= 400 && st.Pending == 0 })
	require.NoError(t, a.Close(context.Background()))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := srv.Client()
	seen := map[string]int{}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String("lake"), Prefix: aws.String("raw/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		require.NoError(t, err)
		for _, o := range page.Contents {
			out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("lake"), Key: o.Key})
			require.NoError(t, err)
			raw, err := io.ReadAll(out.Body)
			out.Body.Close()
			require.NoError(t, err)
			for _, l := range objectLines(t, aws.ToString(o.Key), raw) {
				seen[l]++
			}
		}
	}
	require.Len(t, seen, 400)
	for l, n := range seen {
		require.Equal(t, 1, n, l)
	}
}

// TestArchiveS3SchemaSurvivesRestart: a Parquet archive to a bucket with
// an inferred schema reads back the schema file an earlier run wrote, so
// a column widened before stays wide after a restart: a later run whose
// records alone would infer bigint keeps price a double.
func TestArchiveS3SchemaSurvivesRestart(t *testing.T) {
	srv := testserver.S3(t)
	srv.Env(t)
	srv.CreateBucket(t, "lake")
	options := map[string]any{
		"s3":       map[string]any{"bucket": "lake", "prefix": "tbl/", "endpoint": srv.URL, "forcePathStyle": true},
		"spoolDir": filepath.Join(t.TempDir(), "spool"), "format": "parquet", "bufferSize": 64, "prefixStyle": "hive",
	}
	run := func(from, to int, gen func(i int) string) {
		a := newArchive(t, options, Options{Pipeline: "lake"})
		_, err := a.Invoke(context.Background(), events("shardId-000000000000", from, to, time.Now(), gen))
		require.NoError(t, err)
		require.NoError(t, a.Close(context.Background()))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	get := func(key string) string {
		out, err := srv.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("lake"), Key: aws.String("tbl/" + key)})
		require.NoError(t, err)
		defer out.Body.Close()
		raw, err := io.ReadAll(out.Body)
		require.NoError(t, err)
		return string(raw)
	}
	run(0, 20, func(i int) string { return fmt.Sprintf(`{"n":%d,"price":%d}`, i, i) })
	require.JSONEq(t, `[{"Name":"n","Type":"bigint"},{"Name":"price","Type":"bigint"}]`, get(SchemaFile))
	run(20, 40, func(i int) string { return fmt.Sprintf(`{"n":%d,"price":%d.5}`, i, i) })
	require.JSONEq(t, `[{"Name":"n","Type":"bigint"},{"Name":"price","Type":"double"}]`, get(SchemaFile))
	// Integers only, and a new field: price stays double, ok is added.
	run(40, 60, func(i int) string { return fmt.Sprintf(`{"n":%d,"price":%d,"ok":true}`, i, i) })
	require.JSONEq(t, `[{"Name":"n","Type":"bigint"},{"Name":"ok","Type":"boolean"},{"Name":"price","Type":"double"}]`, get(SchemaFile))
	require.Contains(t, get(TableFile), "`price` double")
}
