package kinesisapi_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/producer/producertest"
)

// Request bodies and decoded data reuse buffers from one request to the
// next. Concurrent PutRecords of every size, some refused part way
// (a stream that does not exist, a record over the limit), store every
// record they acknowledged with its own key and data.
func TestConcurrentPutsKeepEveryRecord(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.createStream(t, "reuse", 4)
	const writers, calls = 6, 15
	var (
		mu   sync.Mutex
		want = map[string]string{} // data by key
		wg   sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			for c := range calls {
				n := 1 + (w*calls+c)*37%500 // 1 to 500 records a call
				size := 1 + (w+c)*131%2000
				recs := make([]types.PutRecordsRequestEntry, n)
				for i := range recs {
					key := fmt.Sprintf("w%d-c%d-r%d", w, c, i)
					recs[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(key), Data: []byte(strings.Repeat(key+"|", size/len(key)+1)[:size])}
				}
				switch c % 5 {
				case 3: // refused: no such stream
					_, err := e.c.PutRecords(e.ctx, &kinesis.PutRecordsInput{StreamName: aws.String("missing"), Records: recs})
					requireAPIError(t, err, "ResourceNotFoundException")
					continue
				case 4: // refused: the last record is over 1 MiB
					big := append(recs, types.PutRecordsRequestEntry{PartitionKey: aws.String("big"), Data: make([]byte, 1<<20)})
					_, err := e.c.PutRecords(e.ctx, &kinesis.PutRecordsInput{StreamName: aws.String("reuse"), Records: big})
					requireAPIError(t, err, "InvalidArgumentException")
					continue
				}
				out, err := e.c.PutRecords(e.ctx, &kinesis.PutRecordsInput{StreamName: aws.String("reuse"), Records: recs})
				require.NoError(t, err)
				require.Zero(t, aws.ToInt32(out.FailedRecordCount))
				mu.Lock()
				for _, r := range recs {
					want[*r.PartitionKey] = string(r.Data)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	got := map[string]string{}
	for _, r := range producertest.ReadAll(t, e.c, "reuse") {
		key := aws.ToString(r.PartitionKey)
		_, twice := got[key]
		require.False(t, twice, "record %s stored twice", key)
		got[key] = string(r.Data)
	}
	require.Len(t, got, len(want))
	for key, data := range want {
		require.Equal(t, data, got[key], "record %s", key)
	}
}
