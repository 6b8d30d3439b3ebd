package channel_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/runneltest"
	"github.com/runnel-dev/runnel/internal/testserver"
)

func TestMain(m *testing.M) { runneltest.Main(m) }

const (
	account = "000000000000"
	role    = "arn:aws:iam::000000000000:role/channel-delivery"
)

// eventually waits for cond (runneltest.Eventually), naming what it waits for.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	runneltest.Eventually(t, d, cond, "timed out waiting for %s", what)
}

func createInput(name, streamARN string, mod func(*kinesis.CreateChannelInput)) *kinesis.CreateChannelInput {
	in := &kinesis.CreateChannelInput{
		ChannelName:             aws.String(name),
		ServiceExecutionRoleARN: aws.String(role),
		StreamConfigurationList: []types.ChannelStreamConfiguration{{
			StreamARN:           aws.String(streamARN),
			RecordConfiguration: &types.RecordConfiguration{RecordFormatType: types.RecordFormatTypeJson},
		}},
		S3DestinationConfiguration: &types.S3DestinationConfiguration{
			StorageConfiguration: &types.S3StorageConfiguration{
				BucketARN:           aws.String("arn:aws:s3:::lake"),
				CompressionType:     types.S3CompressionTypeGzip,
				ExpectedBucketOwner: aws.String(account),
				OutputKeyTemplate:   aws.String("events/dt=!{timestamp:yyyy-MM-dd}/"),
			},
		},
		Tags: map[string]string{"team": "data"},
	}
	if mod != nil {
		mod(in)
	}
	return in
}

func describe(t *testing.T, kc *kinesis.Client, arn string) (*types.ChannelDescription, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := kc.DescribeChannel(ctx, &kinesis.DescribeChannelInput{ChannelARN: aws.String(arn)})
	if err != nil {
		return nil, err
	}
	return out.ChannelDescription, nil
}

func waitStatus(t *testing.T, kc *kinesis.Client, arn string, want types.ChannelStatus) *types.ChannelDescription {
	t.Helper()
	var d *types.ChannelDescription
	eventually(t, 30*time.Second, "channel "+string(want), func() bool {
		var err error
		d, err = describe(t, kc, arn)
		require.NoError(t, err)
		return d.ChannelStatus == want
	})
	return d
}

// put puts the events from..to-1, {"id":i}, and requires every one
// stored.
func put(t *testing.T, kc *kinesis.Client, streamName string, from, to int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := from; i < to; i += 100 {
		var entries []types.PutRecordsRequestEntry
		for j := i; j < min(i+100, to); j++ {
			entries = append(entries, types.PutRecordsRequestEntry{
				Data: fmt.Appendf(nil, `{"id":%d,"page":"/p%d"}`, j, j%5), PartitionKey: aws.String(fmt.Sprint("k", j)),
			})
		}
		out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(streamName), Records: entries})
		require.NoError(t, err)
		require.Zero(t, aws.ToInt32(out.FailedRecordCount))
	}
}

// delivered reads every object under prefix in the bucket and counts
// each line.
func delivered(t *testing.T, c *s3.Client, prefix string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen := map[string]int{}
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("lake"), Prefix: aws.String(prefix)})
	require.NoError(t, err)
	for _, o := range list.Contents {
		key := aws.ToString(o.Key)
		require.Regexp(t, `^events/dt=\d{4}-\d\d-\d\d/shardId-\d{12}-\d+-\d+\.jsonl\.gz$`, key)
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("lake"), Key: o.Key})
		require.NoError(t, err)
		raw, err := io.ReadAll(out.Body)
		out.Body.Close()
		require.NoError(t, err)
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		require.NoError(t, err, key)
		sc := bufio.NewScanner(zr)
		for sc.Scan() {
			seen[sc.Text()]++
		}
		require.NoError(t, sc.Err())
	}
	return seen
}

func requireOnce(t *testing.T, seen map[string]int, n int) {
	t.Helper()
	require.Len(t, seen, n)
	for i := range n {
		line := fmt.Sprintf(`{"id":%d,"page":"/p%d"}`, i, i%5)
		require.Equal(t, 1, seen[line], "record %d delivered %d times", i, seen[line])
	}
}

func apiError[T error](t *testing.T, err error) T {
	t.Helper()
	var e T
	require.Error(t, err)
	require.True(t, errors.As(err, &e), "%T: %v", err, err)
	return e
}

// TestChannelToS3 runs a channel in `runnel serve` against versitygw,
// through aws-sdk-go-v2: create (CREATING, then ACTIVE), deliver every
// record put, once, as gzipped JSON lines under the output key template;
// describe, list, update (UPDATING, then ACTIVE with the new freshness);
// the errors the API reference names; a kill -9 mid-delivery and a
// restart that resumes from the checkpoint with no record twice; delete
// (DELETING, then gone).
func TestChannelToS3(t *testing.T) {
	t.Parallel()
	srv := testserver.S3(t)
	srv.CreateBucket(t, "lake")
	env := []string{
		"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey,
		"AWS_REGION=" + srv.Region, "AWS_EC2_METADATA_DISABLED=true",
	}
	dataDir := t.TempDir()
	serve := func() *runneltest.Process {
		return runneltest.ServeEnv(t, env, "--data-dir", dataDir, "--channel-s3-endpoint", srv.URL, "--channel-freshness", "1s")
	}
	p := serve()
	kc := kinesistest.NewClient(p.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	_, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("clicks"),
		StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}})
	require.NoError(t, err)
	_, err = kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("provisioned"), ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	streamARN := "arn:aws:kinesis:us-east-1:" + account + ":stream/clicks"

	created, err := kc.CreateChannel(ctx, createInput("lake-channel", streamARN, nil))
	require.NoError(t, err)
	cd := created.ChannelDescription
	require.Equal(t, types.ChannelStatusCreating, cd.ChannelStatus)
	require.Equal(t, "lake-channel", aws.ToString(cd.ChannelName))
	require.Regexp(t, `^arn:aws:kinesis:us-east-1:000000000000:channel/lake-channel/[0-9a-f-]{36}$`, aws.ToString(cd.ChannelARN))
	arn := aws.ToString(cd.ChannelARN)

	d := waitStatus(t, kc, arn, types.ChannelStatusActive)
	require.Equal(t, role, aws.ToString(d.ServiceExecutionRoleARN))
	require.Equal(t, aws.ToString(cd.ChannelId), aws.ToString(d.ChannelId))
	require.Len(t, d.StreamConfigurationList, 1)
	require.Equal(t, streamARN, aws.ToString(d.StreamConfigurationList[0].StreamARN))
	require.NotNil(t, d.StreamConfigurationList[0].StreamCreationTimestamp)
	require.Equal(t, types.RecordFormatTypeJson, d.StreamConfigurationList[0].RecordConfiguration.RecordFormatType)
	dest := d.S3DestinationConfiguration
	require.NotNil(t, dest)
	require.Equal(t, int32(300), aws.ToInt32(dest.DataFreshnessInSeconds), "the default freshness")
	require.Equal(t, types.S3CompressionTypeGzip, dest.StorageConfiguration.CompressionType)
	require.Equal(t, "arn:aws:s3:::lake", aws.ToString(dest.DeadLetterQueueS3Configuration.BucketARN), "errors go to the destination bucket")
	require.WithinDuration(t, time.Now(), aws.ToTime(d.ChannelCreationTimestamp), time.Minute)

	put(t, kc, "clicks", 0, 300)
	c := srv.Client()
	eventually(t, 30*time.Second, "300 records in the bucket", func() bool { return len(delivered(t, c, "events/")) >= 300 })
	requireOnce(t, delivered(t, c, "events/"), 300)

	// The errors.
	_, err = kc.CreateChannel(ctx, createInput("lake-channel", streamARN, nil))
	apiError[*types.ResourceInUseException](t, err)
	_, err = describe(t, kc, "arn:aws:kinesis:us-east-1:000000000000:channel/nope/00000000-0000-4000-8000-000000000000")
	require.Contains(t, apiError[*types.ResourceNotFoundException](t, err).ErrorMessage(), "nope")
	_, err = kc.CreateChannel(ctx, createInput("second", streamARN, nil))
	apiError[*types.LimitExceededException](t, err)
	_, err = kc.CreateChannel(ctx, createInput("prov", "arn:aws:kinesis:us-east-1:"+account+":stream/provisioned", nil))
	require.Contains(t, apiError[*types.InvalidArgumentException](t, err).ErrorMessage(), "ON_DEMAND")
	_, err = kc.CreateChannel(ctx, createInput("missing", "arn:aws:kinesis:us-east-1:"+account+":stream/missing", nil))
	apiError[*types.ResourceNotFoundException](t, err)
	_, err = kc.CreateChannel(ctx, createInput("bad name!", streamARN, nil))
	require.Contains(t, apiError[*types.ValidationException](t, err).ErrorMessage(), "channelName")
	_, err = kc.CreateChannel(ctx, createInput("fresh", streamARN, func(in *kinesis.CreateChannelInput) {
		in.S3DestinationConfiguration.DataFreshnessInSeconds = aws.Int32(60)
	}))
	require.Contains(t, apiError[*types.InvalidArgumentException](t, err).ErrorMessage(), "between 300 and 900")
	_, err = kc.CreateChannel(ctx, createInput("iceberg", streamARN, func(in *kinesis.CreateChannelInput) {
		in.S3DestinationConfiguration = nil
		in.S3TablesDestinationConfiguration = &types.S3TablesDestinationConfiguration{
			DeadLetterQueueS3Configuration: &types.DeadLetterQueueS3Configuration{BucketARN: aws.String("arn:aws:s3:::dlq"), ExpectedBucketOwner: aws.String(account)},
			S3TablesConfigurationList: []types.S3TablesConfiguration{{CompressionType: types.S3TablesCompressionTypeZstd, Namespace: aws.String("ns"),
				TableBucketARN: aws.String("arn:aws:s3tables:us-east-1:000000000000:bucket/t"), TableName: aws.String("t")}},
		}
	}))
	require.Contains(t, apiError[*types.InvalidArgumentException](t, err).ErrorMessage(), "Iceberg")
	_, err = kc.CreateChannel(ctx, createInput("bucket", streamARN, func(in *kinesis.CreateChannelInput) {
		in.S3DestinationConfiguration.StorageConfiguration.BucketARN = aws.String("arn:aws:s3:::Not_A_Bucket")
	}))
	require.Contains(t, apiError[*types.ValidationException](t, err).ErrorMessage(), "bucketARN")
	_, err = kc.CreateChannel(ctx, createInput("tmpl", streamARN, func(in *kinesis.CreateChannelInput) {
		in.S3DestinationConfiguration.StorageConfiguration.OutputKeyTemplate = aws.String("/abs/")
	}))
	apiError[*types.InvalidArgumentException](t, err)
	_, err = kc.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("clicks")})
	require.Contains(t, apiError[*types.ResourceInUseException](t, err).ErrorMessage(), "DeleteChannel")

	// List, with and without a stream filter.
	list, err := kc.ListChannels(ctx, &kinesis.ListChannelsInput{})
	require.NoError(t, err)
	require.Len(t, list.ChannelSummaries, 1)
	sum := list.ChannelSummaries[0]
	require.Equal(t, arn, aws.ToString(sum.ChannelARN))
	require.Equal(t, types.ChannelDestinationTypeS3, sum.ChannelDestinationType)
	require.Equal(t, types.ChannelStatusActive, sum.ChannelStatus)
	require.Nil(t, list.NextToken)
	list, err = kc.ListChannels(ctx, &kinesis.ListChannelsInput{StreamFilter: []types.StreamFilter{{StreamARN: aws.String(streamARN + "x")}}})
	require.NoError(t, err)
	require.Empty(t, list.ChannelSummaries)

	// Tags: those given at creation, then TagResource and UntagResource.
	tags := func() map[string]string {
		out, err := kc.ListTagsForResource(ctx, &kinesis.ListTagsForResourceInput{ResourceARN: aws.String(arn)})
		require.NoError(t, err)
		m := map[string]string{}
		for _, tg := range out.Tags {
			m[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
		}
		return m
	}
	require.Equal(t, map[string]string{"team": "data"}, tags())
	_, err = kc.TagResource(ctx, &kinesis.TagResourceInput{ResourceARN: aws.String(arn), Tags: map[string]string{"env": "test"}})
	require.NoError(t, err)
	_, err = kc.UntagResource(ctx, &kinesis.UntagResourceInput{ResourceARN: aws.String(arn), TagKeys: []string{"team"}})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"env": "test"}, tags())
	require.Equal(t, types.ChannelStatusActive, waitStatus(t, kc, arn, types.ChannelStatusActive).ChannelStatus, "tagging changes no status")

	// Update: UPDATING, then ACTIVE with the new freshness.
	up, err := kc.UpdateChannel(ctx, &kinesis.UpdateChannelInput{ChannelARN: aws.String(arn),
		S3DestinationConfiguration: &types.S3DestinationUpdateInput{DataFreshnessInSeconds: aws.Int32(600)}})
	require.NoError(t, err)
	require.Equal(t, types.ChannelStatusUpdating, up.ChannelDescription.ChannelStatus)
	d = waitStatus(t, kc, arn, types.ChannelStatusActive)
	require.Equal(t, int32(600), aws.ToInt32(d.S3DestinationConfiguration.DataFreshnessInSeconds))
	_, err = kc.UpdateChannel(ctx, &kinesis.UpdateChannelInput{ChannelARN: aws.String(arn),
		S3DestinationConfiguration: &types.S3DestinationUpdateInput{DataFreshnessInSeconds: aws.Int32(1000)}})
	apiError[*types.InvalidArgumentException](t, err)

	// The dashboard shows the channel's pipeline.
	resp, err := http.Get(p.URL + "/api/pipelines")
	require.NoError(t, err)
	var pipes struct {
		Pipelines []struct{ Name, Source, Handler string }
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&pipes))
	resp.Body.Close()
	require.Len(t, pipes.Pipelines, 1)
	require.Equal(t, "channel-lake-channel", pipes.Pipelines[0].Name)
	require.Equal(t, "clicks", pipes.Pipelines[0].Source)
	require.Equal(t, "channel lake-channel (ACTIVE) to s3://lake/ at "+srv.URL, pipes.Pipelines[0].Handler)
	// The log says where the objects go and whose credentials write them.
	p.WaitFor(t, regexp.MustCompile(`channel delivering".*to="s3://lake/ at `+regexp.QuoteMeta(srv.URL)+`" credentials="the server's environment \(AWS_ACCESS_KEY_ID\)"`), 10*time.Second)

	// kill -9 mid-delivery, then a restart: the channel is ACTIVE again
	// and resumes from its checkpoint; nothing is lost or delivered twice.
	put(t, kc, "clicks", 300, 600)
	require.NoError(t, p.Signal(syscall.SIGKILL))
	<-p.Done()
	p = serve()
	kc = kinesistest.NewClient(p.URL)
	waitStatus(t, kc, arn, types.ChannelStatusActive)
	put(t, kc, "clicks", 600, 700)
	eventually(t, 30*time.Second, "700 records in the bucket", func() bool { return len(delivered(t, c, "events/")) >= 700 })
	requireOnce(t, delivered(t, c, "events/"), 700)

	// Delete: DELETING, then gone; its state goes with it.
	_, err = kc.DeleteChannel(ctx, &kinesis.DeleteChannelInput{ChannelARN: aws.String(arn)})
	require.NoError(t, err)
	eventually(t, 30*time.Second, "the channel gone", func() bool {
		_, err := describe(t, kc, arn)
		var nf *types.ResourceNotFoundException
		return errors.As(err, &nf)
	})
	list, err = kc.ListChannels(ctx, &kinesis.ListChannelsInput{})
	require.NoError(t, err)
	require.Empty(t, list.ChannelSummaries)
	entries, err := os.ReadDir(filepath.Join(dataDir, "channels"))
	require.NoError(t, err)
	require.Empty(t, entries)
	requireOnce(t, delivered(t, c, "events/"), 700)
	_, err = kc.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("clicks")})
	require.NoError(t, err)
	require.NotRegexp(t, regexp.MustCompile(`level=ERROR`), p.Stderr())
}

// TestChannelToDir: with --channel-dir a bucket is a folder; a channel
// with no output key template writes hourly prefixes; ZSTD objects are
// .jsonl.zst.
func TestChannelToDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, kc, arn := dirChannel(t, dir, "local", "--channel-freshness", "1s")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	put(t, kc, "clicks", 0, 150)
	read := func() map[string]int { return deliveredDir(t, filepath.Join(dir, "lake")) }
	eventually(t, 30*time.Second, "150 records in the folder", func() bool { return len(read()) >= 150 })
	requireOnce(t, read(), 150)
	_, err := kc.DeleteChannel(ctx, &kinesis.DeleteChannelInput{ChannelARN: aws.String(arn)})
	require.NoError(t, err)
	_, err = kc.DeleteChannel(ctx, &kinesis.DeleteChannelInput{ChannelARN: aws.String(arn)})
	if err != nil {
		// Still DELETING, or already gone.
		require.True(t, errors.As(err, new(*types.ResourceInUseException)) || errors.As(err, new(*types.ResourceNotFoundException)), "%v", err)
	}
	eventually(t, 30*time.Second, "the channel gone", func() bool {
		_, err := describe(t, kc, arn)
		return errors.As(err, new(*types.ResourceNotFoundException))
	})
}

// TestChannelDeleteKeepsUnwrittenSpool: a channel deleted while its
// destination refuses objects (the bucket's folder is a file) stays
// DELETING with its spool kept, retrying; once the destination takes
// objects again the spool is written out, every record once, and only
// then is the channel gone.
func TestChannelDeleteKeepsUnwrittenSpool(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, kc, arn := dirChannel(t, dir, "gated")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	put(t, kc, "clicks", 0, 150)
	// The default freshness (300s) keeps the records in the spool.
	spooled := regexp.MustCompile(`(?m)^runnel_archive_spooled_records_total\{pipeline="channel-gated"\} 150$`)
	eventually(t, 30*time.Second, "150 records spooled", func() bool {
		resp, err := http.Get(p.URL + "/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return spooled.Match(body)
	})
	lake := filepath.Join(dir, "lake")
	require.Empty(t, deliveredDir(t, lake), "no object written before the freshness")
	require.NoError(t, os.RemoveAll(lake))
	require.NoError(t, os.WriteFile(lake, []byte("not a folder"), 0o644))

	_, err := kc.DeleteChannel(ctx, &kinesis.DeleteChannelInput{ChannelARN: aws.String(arn)})
	require.NoError(t, err)
	// At least two failed attempts: the stopped delivery's and a retry
	// of the kept spool.
	p.WaitFor(t, regexp.MustCompile(`(?s)spool could not be written out.*spool could not be written out`), 30*time.Second)
	d, err := describe(t, kc, arn)
	require.NoError(t, err)
	require.Equal(t, types.ChannelStatusDeleting, d.ChannelStatus)

	require.NoError(t, os.Remove(lake))
	eventually(t, 30*time.Second, "the channel gone", func() bool {
		_, err := describe(t, kc, arn)
		return errors.As(err, new(*types.ResourceNotFoundException))
	})
	requireOnce(t, deliveredDir(t, lake), 150)
}

// deliveredDir reads every .jsonl.zst object under a bucket's folder
// (hourly prefixes) and counts each line.
func deliveredDir(t *testing.T, root string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	require.NoError(t, filepath.WalkDir(root, func(path string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(path, ".jsonl.zst") {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		require.Regexp(t, `^\d{4}/\d\d/\d\d/\d\d/shardId-\d{12}-\d+-\d+\.jsonl\.zst$`, filepath.ToSlash(rel))
		compressed, err := os.ReadFile(path)
		require.NoError(t, err)
		zr, err := zstd.NewReader(nil)
		require.NoError(t, err)
		defer zr.Close()
		raw, err := zr.DecodeAll(compressed, nil)
		require.NoError(t, err, rel)
		for _, l := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
			seen[l]++
		}
		return nil
	}))
	return seen
}

// dirChannel serves with --channel-dir dir (and args), creates the
// on-demand stream clicks and an ACTIVE channel name of it writing ZSTD
// objects under hourly prefixes to the bucket lake.
func dirChannel(t *testing.T, dir, name string, args ...string) (*runneltest.Process, *kinesis.Client, string) {
	t.Helper()
	p := runneltest.Serve(t, append([]string{"--data-dir", t.TempDir(), "--channel-dir", dir}, args...)...)
	kc := kinesistest.NewClient(p.URL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("clicks"),
		StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}})
	require.NoError(t, err)
	out, err := kc.CreateChannel(ctx, createInput(name, "arn:aws:kinesis:us-east-1:"+account+":stream/clicks", func(in *kinesis.CreateChannelInput) {
		in.S3DestinationConfiguration.StorageConfiguration.CompressionType = types.S3CompressionTypeZstd
		in.S3DestinationConfiguration.StorageConfiguration.OutputKeyTemplate = nil
	}))
	require.NoError(t, err)
	arn := aws.ToString(out.ChannelDescription.ChannelARN)
	waitStatus(t, kc, arn, types.ChannelStatusActive)
	return p, kc, arn
}
