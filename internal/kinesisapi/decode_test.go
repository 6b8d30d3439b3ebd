package kinesisapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/stream"
)

// seeds are valid bodies for every action.
var seeds = map[string][]string{
	"CreateChannel": {`{"ChannelName":"c","ServiceExecutionRoleARN":"arn:aws:iam::000000000000:role/r",` +
		`"StreamConfigurationList":[{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s","RecordConfiguration":{"RecordFormatType":"JSON"}}],` +
		`"S3DestinationConfiguration":{"StorageConfiguration":{"BucketARN":"arn:aws:s3:::lake","CompressionType":"GZIP","ExpectedBucketOwner":"000000000000",` +
		`"OutputKeyTemplate":"e/!{timestamp:yyyy}/"},"DataFreshnessInSeconds":300,` +
		`"DeadLetterQueueS3Configuration":{"BucketARN":"arn:aws:s3:::lake","ExpectedBucketOwner":"000000000000","ErrorOutputPrefix":"err/"}},` +
		`"EncryptionConfiguration":{"EncryptionType":"KMS","KeyId":"k"},"LoggingConfiguration":{"CloudWatchLogs":{"Enabled":true}},"Tags":{"a":"b"}}`},
	"DescribeChannel": {`{"ChannelARN":"arn:aws:kinesis:us-east-1:000000000000:channel/c/0f1e2d3c-0000-4000-8000-000000000000"}`},
	"DeleteChannel":   {`{"ChannelARN":"arn:aws:kinesis:us-east-1:000000000000:channel/c/0f1e2d3c-0000-4000-8000-000000000000"}`},
	"ListChannels":    {`{}`, `{"MaxResults":5,"NextToken":"channels:5","StreamFilter":[{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s","StreamCreationTimestamp":1.5e9}]}`},
	"UpdateChannel": {`{"ChannelARN":"arn:aws:kinesis:us-east-1:000000000000:channel/c/0f1e2d3c-0000-4000-8000-000000000000",` +
		`"S3DestinationConfiguration":{"DataFreshnessInSeconds":600},"LoggingConfiguration":{"CloudWatchLogs":{"Enabled":false}}}`},
	"CreateStream": {`{"StreamName":"s","ShardCount":2}`,
		`{"StreamName":"s","StreamModeDetails":{"StreamMode":"ON_DEMAND"},"Tags":{"a":"b"},"MaxRecordSizeInKiB":2048}`},
	"DeleteStream":          {`{"StreamName":"s","EnforceConsumerDeletion":true}`},
	"DescribeStream":        {`{"StreamName":"s","Limit":2,"ExclusiveStartShardId":"shardId-000000000000"}`},
	"DescribeStreamSummary": {`{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s"}`},
	"ListStreams":           {`{}`, `{"Limit":3,"ExclusiveStartStreamName":"a","NextToken":"x.y"}`},
	"ListShards": {`{"StreamName":"s","MaxResults":5}`, `{"NextToken":"x.y"}`,
		`{"StreamName":"s","ShardFilter":{"Type":"AT_TIMESTAMP","Timestamp":1712345678.123}}`,
		`{"StreamName":"s","ShardFilter":{"Type":"AFTER_SHARD_ID","ShardId":"shardId-000000000001"}}`},
	"IncreaseStreamRetentionPeriod": {`{"StreamName":"s","RetentionPeriodHours":48}`},
	"DecreaseStreamRetentionPeriod": {`{"StreamName":"s","RetentionPeriodHours":24}`},
	"PutRecord":                     {`{"StreamName":"s","PartitionKey":"k","Data":"aGVsbG8=","ExplicitHashKey":"12345","SequenceNumberForOrdering":"1"}`},
	"PutRecords":                    {`{"StreamName":"s","Records":[{"PartitionKey":"k","Data":"aGk="},{"PartitionKey":"j","Data":"","ExplicitHashKey":"0"}]}`},
	"GetShardIterator": {`{"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"AT_SEQUENCE_NUMBER","StartingSequenceNumber":"49590338271490256608559692538361571095921575989136588898"}`,
		`{"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"AT_TIMESTAMP","Timestamp":1712345678}`},
	"GetRecords":                             {`{"ShardIterator":"abc","Limit":100}`},
	"AddTagsToStream":                        {`{"StreamName":"s","Tags":{"k":"v","e":""}}`},
	"RemoveTagsFromStream":                   {`{"StreamName":"s","TagKeys":["k"]}`},
	"ListTagsForStream":                      {`{"StreamName":"s","ExclusiveStartTagKey":"a","Limit":10}`},
	"UpdateStreamMode":                       {`{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s","StreamModeDetails":{"StreamMode":"ON_DEMAND"}}`},
	"StartStreamEncryption":                  {`{"StreamName":"s","EncryptionType":"KMS","KeyId":"alias/aws/kinesis"}`},
	"StopStreamEncryption":                   {`{"StreamName":"s","EncryptionType":"KMS","KeyId":"alias/aws/kinesis"}`},
	"EnableEnhancedMonitoring":               {`{"StreamName":"s","ShardLevelMetrics":["ALL"]}`},
	"DisableEnhancedMonitoring":              {`{"StreamName":"s","ShardLevelMetrics":["IncomingBytes","OutgoingBytes"]}`},
	"DescribeLimits":                         {`{}`},
	"DescribeAccountSettings":                {`{}`},
	"UpdateAccountSettings":                  {`{"MinimumThroughputBillingCommitment":{"Status":"ENABLED"}}`},
	"UpdateStreamWarmThroughput":             {`{"StreamName":"s","StreamId":"s-id","WarmThroughputMiBps":100}`},
	"PutResourcePolicy":                      {`{"ResourceARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s","Policy":"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"000000000000\"},\"Action\":\"kinesis:*\",\"Resource\":\"*\"}}"}`},
	"GetResourcePolicy":                      {`{"ResourceARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s"}`},
	"DeleteResourcePolicy":                   {`{"ResourceARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/c:1"}`},
	"UpdateStreamRecordDistributionStrategy": {`{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s","RecordDistributionStrategy":"AUTO"}`},
	"UpdateMaxRecordSize":                    {`{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s","MaxRecordSizeInKiB":2048}`},
	"TagResource":                            {`{"ResourceARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s","Tags":{"k":"v"}}`},
	"UntagResource":                          {`{"ResourceARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s","TagKeys":["k"]}`},
	"ListTagsForResource":                    {`{"ResourceARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s"}`},
	"SplitShard":                             {`{"StreamName":"s","ShardToSplit":"shardId-000000000000","NewStartingHashKey":"12345"}`},
	"MergeShards":                            {`{"StreamName":"s","ShardToMerge":"shardId-000000000000","AdjacentShardToMerge":"shardId-000000000001"}`},
	"UpdateShardCount":                       {`{"StreamName":"s","TargetShardCount":2,"ScalingType":"UNIFORM_SCALING"}`},
	"RegisterStreamConsumer":                 {`{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s","ConsumerName":"app","Tags":{"k":"v"}}`},
	"DeregisterStreamConsumer": {`{"ConsumerARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/app:1712345678"}`,
		`{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s","ConsumerName":"app"}`},
	"DescribeStreamConsumer": {`{"ConsumerARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/app:1712345678"}`},
	"ListStreamConsumers":    {`{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s","MaxResults":5,"NextToken":"x.y","StreamCreationTimestamp":1712345678}`},
	"SubscribeToShard": {`{"ConsumerARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/app:1712345678","ShardId":"shardId-000000000000","StartingPosition":{"Type":"LATEST"}}`,
		`{"ConsumerARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/app:1712345678","ShardId":"shardId-000000000000","StartingPosition":{"Type":"AFTER_SEQUENCE_NUMBER","SequenceNumber":"49590338271490256608559692538361571095921575989136588898"}}`,
		`{"ConsumerARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/app:1712345678","ShardId":"shardId-000000000000","StartingPosition":{"Type":"AT_TIMESTAMP","Timestamp":1712345678.5}}`},
}

var clientErrorTypes = []string{typeValidation, typeInvalidArgument, typeSerialization}

// FuzzDecode feeds arbitrary bytes to every action's decoder: each must
// either produce a request or a client error of a known AWS type, and
// never panic.
func FuzzDecode(f *testing.F) {
	acts := actions()
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range acts {
			if !yield(n) {
				return
			}
		}
	})
	for i, name := range names {
		for _, body := range seeds[name] {
			f.Add(uint8(i), []byte(body))
		}
	}
	f.Add(uint8(0), []byte(`{"StreamName":"s","ShardCount":"abc"}`))
	f.Add(uint8(0), []byte(`[`))
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		name := names[int(which)%len(names)]
		req, err := acts[name].decode(body)
		if err == nil {
			require.NotNil(t, req, name)
			return
		}
		var e *Error
		require.True(t, errors.As(err, &e), "%s: not an API error: %v", name, err)
		require.Contains(t, clientErrorTypes, e.Type, "%s: %v", name, err)
		require.Equal(t, http.StatusBadRequest, e.Status)
		require.NotEmpty(t, e.Msg)
	})
}

func TestSeedsDecode(t *testing.T) {
	for name, act := range actions() {
		require.NotEmpty(t, seeds[name], "no seed for %s", name)
		for _, body := range seeds[name] {
			_, err := act.decode([]byte(body))
			require.NoError(t, err, "%s %s", name, body)
		}
	}
}

func TestValidationMessages(t *testing.T) {
	tests := []struct {
		action, body, want string
	}{
		{"CreateStream", `{"StreamName":"s","ShardCount":0}`,
			"ValidationException: 1 validation error detected: Value '0' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1"},
		{"CreateStream", `{"ShardCount":0}`,
			"ValidationException: 2 validation errors detected: Value null at 'streamName' failed to satisfy constraint: Member must not be null; " +
				"Value '0' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1"},
		{"GetRecords", `{"ShardIterator":""}`,
			"ValidationException: 1 validation error detected: Value '' at 'shardIterator' failed to satisfy constraint: Member must have length greater than or equal to 1"},
		{"DescribeStreamSummary", `{}`, "InvalidArgumentException: Either StreamName or StreamARN must be specified."},
		{"ListShards", `{"StreamName":"s","NextToken":"t"}`, "InvalidArgumentException: NextToken and StreamName, ExclusiveStartShardId or StreamCreationTimestamp cannot be provided together."},
		{"PutRecord", `{"StreamName":"s","PartitionKey":"k","Data":"","ExplicitHashKey":"340282366920938463463374607431768211456"}`,
			"InvalidArgumentException: Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was 340282366920938463463374607431768211456"},
		{"GetShardIterator", `{"StreamName":"s","ShardId":"x","ShardIteratorType":"AFTER_SEQUENCE_NUMBER"}`,
			"InvalidArgumentException: StartingSequenceNumber is required for a shard iterator of type AFTER_SEQUENCE_NUMBER."},
		{"CreateStream", `{"StreamName":"s","ShardCount":1e3}`, "SerializationException: Member 'ShardCount' must be an integer, not number 1e3."},
	}
	acts := actions()
	for _, tc := range tests {
		_, err := acts[tc.action].decode([]byte(tc.body))
		require.EqualError(t, err, tc.want, "%s %s", tc.action, tc.body)
	}
}

func TestEpochTime(t *testing.T) {
	var v struct{ T epochTime }
	require.NoError(t, json.Unmarshal([]byte(`{"T":1712345678.123}`), &v))
	require.Equal(t, time.UnixMilli(1712345678123).UTC(), v.T.Time)
	out, err := json.Marshal(epochSeconds(time.UnixMilli(1712345678120)))
	require.NoError(t, err)
	require.Equal(t, "1712345678.12", string(out))
}

// listEngine is an Engine whose List and Describe answer names, for paging
// tests; the rest (the token codec) is a real in-memory engine.
type listEngine struct {
	Engine
	names []string
}

func (e listEngine) List() []stream.Summary {
	out := make([]stream.Summary, len(e.names))
	for i, n := range e.names {
		out[i] = stream.Summary{Name: n}
	}
	return out
}

func (e listEngine) Describe(name string) (*stream.Description, error) {
	return &stream.Description{Name: name, Shards: []stream.Shard{{ID: "shardId-000000000000"}, {ID: "shardId-000000000001"}}}, nil
}

func TestNextTokenExpiry(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	svc, err := stream.Open(t.Context(), stream.Config{InMemory: true})
	require.NoError(t, err)
	defer svc.Close()
	h := newHandler(listEngine{Engine: svc, names: []string{"a", "b", "c"}}, nil, func() time.Time { return now })
	post := func(action, body string) map[string]any {
		rec := httptest.NewRecorder()
		req := httptest.NewRequestWithContext(context.Background(), http.MethodPost, "/", strings.NewReader(body))
		req.Header.Set("X-Amz-Target", targetPrefix+action)
		h.ServeHTTP(rec, req)
		var out map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))
		return out
	}
	for _, tc := range []struct{ action, first, next string }{
		{"ListStreams", `{"Limit":1}`, `{"NextToken":%q}`},
		{"ListShards", `{"StreamName":"s","MaxResults":1}`, `{"NextToken":%q}`},
	} {
		now = time.Unix(1_700_000_000, 0)
		token, _ := post(tc.action, tc.first)["NextToken"].(string)
		require.NotEmpty(t, token)
		next, _ := json.Marshal(map[string]string{"NextToken": token})

		now = now.Add(299 * time.Second)
		require.NotContains(t, post(tc.action, string(next)), "__type")

		now = now.Add(2 * time.Second)
		require.Equal(t, typeExpiredNextToken, post(tc.action, string(next))["__type"])

		// A token for one listing is not valid for the other.
		other := "ListShards"
		if tc.action == other {
			other = "ListStreams"
		}
		now = time.Unix(1_700_000_000, 0)
		require.Equal(t, typeInvalidArgument, post(other, string(next))["__type"])
	}
}

// failingEngine fails every call with an error the API layer does not
// know.
type failingEngine struct{ Engine }

func (failingEngine) Describe(string) (*stream.Description, error) {
	return nil, errors.New("disk on fire at /var/lib/runnel")
}

func TestInternalFailure(t *testing.T) {
	var logged strings.Builder
	h := newHandler(failingEngine{}, slog.New(slog.NewTextHandler(&logged, nil)), time.Now)
	rec := httptest.NewRecorder()
	req := httptest.NewRequestWithContext(context.Background(), http.MethodPost, "/", strings.NewReader(`{"StreamName":"s"}`))
	req.Header.Set("X-Amz-Target", targetPrefix+"DescribeStream")
	h.ServeHTTP(rec, req)

	require.Equal(t, http.StatusInternalServerError, rec.Code)
	require.NotContains(t, rec.Body.String(), "disk on fire")
	var out map[string]string
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))
	require.Equal(t, typeInternalFailure, out["__type"])
	require.Contains(t, logged.String(), "disk on fire")
	require.Contains(t, logged.String(), rec.Header().Get(requestIDHeader))
}

func TestBlobDecode(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{`"aGVsbG8="`, "hello", true},
		{`""`, "", true},
		{`"P\/8="`, "?\xff", true},
		{`"aGVsbG8"`, "", false},
		{`"a\nb="`, "", false},
		{`5`, "", false},
		{`"@@@@"`, "", false},
	}
	for _, tc := range tests {
		var b blob
		err := b.UnmarshalJSON([]byte(tc.in))
		if !tc.ok {
			require.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, string(b), tc.in)
	}
}
