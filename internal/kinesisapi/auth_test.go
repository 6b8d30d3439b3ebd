package kinesisapi_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/auth"
	"github.com/runnel-dev/runnel/internal/kinesisapi"
	"github.com/runnel-dev/runnel/internal/kinesisclient"
	"github.com/runnel-dev/runnel/internal/stream"
)

// startAuth serves the API with authentication on, on 127.0.0.1.
func startAuth(t *testing.T, keys ...auth.Key) string {
	t.Helper()
	ks, err := auth.NewKeys(keys)
	require.NoError(t, err)
	return serveAuth(t, false, ks)
}

// serveAuth serves the API with authentication by ks on, on 127.0.0.1,
// scoping streams by account and region when multiRegion is set.
func serveAuth(t *testing.T, multiRegion bool, ks *auth.Keys) string {
	t.Helper()
	svc, err := stream.Open(t.Context(), stream.Config{Dir: t.TempDir(), NoSync: true, MultiRegion: multiRegion})
	require.NoError(t, err)
	opts := []kinesisapi.Option{kinesisapi.WithAuth(ks)}
	if multiRegion {
		opts = append(opts, kinesisapi.WithMultiRegion())
	}
	srv := httptest.NewServer(kinesisapi.NewHandler(svc, nil, opts...))
	t.Cleanup(func() {
		srv.Close()
		require.NoError(t, svc.Close())
	})
	return srv.URL
}

func clientWith(url string, creds aws.CredentialsProvider) *kinesis.Client {
	return kinesis.New(kinesis.Options{
		BaseEndpoint: aws.String(url), Region: "us-east-1", Credentials: creds, Retryer: kinesisclient.ConnectionRetryer(),
	})
}

// startScoped serves the API with three keys (AKIDADMIN may do
// everything, AKIDDEVICE put to clicks, AKIDREADER read clicks) and the
// streams clicks and orders, and returns a client for each key.
func startScoped(t *testing.T) (url string, admin, device, reader *kinesis.Client) {
	t.Helper()
	url = startAuth(t,
		auth.Key{ID: "AKIDADMIN", Secret: "admin-secret", All: true},
		auth.Key{ID: "AKIDDEVICE", Secret: "device-secret", PutStreams: []string{"clicks"}},
		auth.Key{ID: "AKIDREADER", Secret: "reader-secret", ReadStreams: []string{"clicks"}},
	)
	admin = clientWith(url, credentials.NewStaticCredentialsProvider("AKIDADMIN", "admin-secret", ""))
	device = clientWith(url, credentials.NewStaticCredentialsProvider("AKIDDEVICE", "device-secret", ""))
	reader = clientWith(url, credentials.NewStaticCredentialsProvider("AKIDREADER", "reader-secret", ""))
	for _, name := range []string{"clicks", "orders"} {
		_, err := admin.CreateStream(t.Context(), &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(1)})
		require.NoError(t, err)
	}
	return url, admin, device, reader
}

func TestAuthentication(t *testing.T) {
	url, admin, device, reader := startScoped(t)
	ctx := t.Context()

	t.Run("wrong secret", func(t *testing.T) {
		c := clientWith(url, credentials.NewStaticCredentialsProvider("AKIDADMIN", "guess", ""))
		_, err := c.ListStreams(ctx, &kinesis.ListStreamsInput{})
		require.Contains(t, requireAPIError(t, err, "InvalidSignatureException"), "does not match the signature you provided")
	})
	t.Run("unknown key", func(t *testing.T) {
		c := clientWith(url, credentials.NewStaticCredentialsProvider("AKIDNOBODY", "x", ""))
		_, err := c.ListStreams(ctx, &kinesis.ListStreamsInput{})
		require.Equal(t, "The security token included in the request is invalid.", requireAPIError(t, err, "UnrecognizedClientException"))
	})
	t.Run("unsigned", func(t *testing.T) {
		c := clientWith(url, aws.AnonymousCredentials{})
		_, err := c.ListStreams(ctx, &kinesis.ListStreamsInput{})
		require.Equal(t, "Missing Authentication Token", requireAPIError(t, err, "MissingAuthenticationTokenException"))
	})
	t.Run("unsigned raw request", func(t *testing.T) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/", http.NoBody)
		require.NoError(t, err)
		req.Header.Set("X-Amz-Target", "Kinesis_20131202.ListStreams")
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})

	t.Run("put-only key", func(t *testing.T) {
		out, err := device.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("clicks"), PartitionKey: aws.String("k"), Data: []byte("x")})
		require.NoError(t, err)
		require.NotEmpty(t, out.SequenceNumber)
		_, err = device.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("clicks"), Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String("k"), Data: []byte("y")}}})
		require.NoError(t, err)

		_, err = device.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("orders"), PartitionKey: aws.String("k"), Data: []byte("x")})
		denied := requireTyped[*types.AccessDeniedException](t, err)
		require.Equal(t, "User: arn:aws:iam::000000000000:user/AKIDDEVICE is not authorized to perform: kinesis:PutRecord on resource: arn:aws:kinesis:us-east-1:000000000000:stream/orders because no identity-based policy allows the kinesis:PutRecord action", denied.ErrorMessage())
		_, err = device.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("clicks"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		requireTyped[*types.AccessDeniedException](t, err)
		_, err = device.ListStreams(ctx, &kinesis.ListStreamsInput{})
		requireTyped[*types.AccessDeniedException](t, err)
		_, err = device.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("clicks")})
		requireTyped[*types.AccessDeniedException](t, err)
	})

	t.Run("read-only key", func(t *testing.T) {
		it, err := reader.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("clicks"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		require.NoError(t, err)
		got, err := reader.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
		require.NoError(t, err)
		require.Len(t, got.Records, 2)
		_, err = reader.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("clicks")})
		require.NoError(t, err)
		_, err = reader.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("clicks"), PartitionKey: aws.String("k"), Data: []byte("x")})
		requireTyped[*types.AccessDeniedException](t, err)
		_, err = reader.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("orders")})
		requireTyped[*types.AccessDeniedException](t, err)
		// An iterator of a stream the key may not read is refused too.
		other, err := admin.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("orders"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		require.NoError(t, err)
		_, err = reader.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: other.ShardIterator})
		requireTyped[*types.AccessDeniedException](t, err)
		_, err = reader.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator, StreamARN: aws.String("arn:aws:kinesis:us-east-1:000000000000:stream/orders")})
		requireTyped[*types.AccessDeniedException](t, err)
	})
}
