package table_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/processor"
	"github.com/runnel-dev/runnel/internal/processor/table"
	"github.com/runnel-dev/runnel/internal/sink"
	"github.com/runnel-dev/runnel/internal/sink/dynamo"
	"github.com/runnel-dev/runnel/internal/testserver"
)

// countingDB wraps a real client, records the size of every
// BatchWriteItem call, and can hold back items as unprocessed.
type countingDB struct {
	*dynamodb.Client
	mu    sync.Mutex
	sizes []int
	// holdBack, when > 0, is how many items of each of the next calls
	// are not sent and are returned as UnprocessedItems instead; it
	// applies to holdCalls calls.
	holdBack  int
	holdCalls int
	// afterCall, when set, is told the number of calls so far after
	// each call is counted.
	afterCall func(calls int)
}

func (c *countingDB) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	c.mu.Lock()
	n := 0
	for _, reqs := range in.RequestItems {
		n += len(reqs)
	}
	c.sizes = append(c.sizes, n)
	calls := len(c.sizes)
	hold := 0
	if c.holdCalls > 0 {
		c.holdCalls--
		hold = c.holdBack
	}
	c.mu.Unlock()
	if c.afterCall != nil {
		c.afterCall(calls)
	}
	if hold == 0 {
		return c.Client.BatchWriteItem(ctx, in, optFns...)
	}
	send := map[string][]types.WriteRequest{}
	held := map[string][]types.WriteRequest{}
	for tbl, reqs := range in.RequestItems {
		k := min(hold, len(reqs))
		held[tbl] = reqs[len(reqs)-k:]
		send[tbl] = reqs[:len(reqs)-k]
	}
	out := &dynamodb.BatchWriteItemOutput{}
	for tbl, reqs := range send {
		if len(reqs) == 0 {
			delete(send, tbl)
		}
	}
	if len(send) > 0 {
		var err error
		if out, err = c.Client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: send}, optFns...); err != nil {
			return nil, err
		}
	}
	for tbl, reqs := range held {
		if out.UnprocessedItems == nil {
			out.UnprocessedItems = map[string][]types.WriteRequest{}
		}
		out.UnprocessedItems[tbl] = append(out.UnprocessedItems[tbl], reqs...)
	}
	return out, nil
}

func (c *countingDB) calls() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.sizes...)
}

type rejected struct {
	mu   sync.Mutex
	recs []string
	why  []error
}

func (r *rejected) reject(_ context.Context, rec *lambda.KinesisEventRecord, reason error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, string(rec.Kinesis.Data))
	r.why = append(r.why, reason)
	return nil
}

func event(datas ...string) *lambda.KinesisEvent {
	ev := &lambda.KinesisEvent{}
	for i, d := range datas {
		seq := fmt.Sprintf("4960000000000000000000000000000000000000000%05d", i)
		ev.Records = append(ev.Records, lambda.KinesisEventRecord{
			EventID: "shardId-000000000000:" + seq,
			Kinesis: lambda.KinesisRecord{SequenceNumber: seq, PartitionKey: "k", Data: []byte(d), ApproximateArrivalTimestamp: 1.7e9},
		})
	}
	return ev
}

func sensorConfig() table.Config {
	return table.Config{
		Table:       "UnicornSensorData",
		CreateTable: &dynamo.CreateTable{PartitionKey: "Name", SortKey: "StatusTime"},
	}
}

func sensor(name string, i int) string {
	return fmt.Sprintf(`{"Name":%q,"StatusTime":"2024-05-01 10:00:%02d.%03d","Latitude":47.61,"Longitude":-122.33,"Distance":%d,"HealthPoints":150,"MagicPoints":%d,"Tags":["a",1],"Meta":{"ok":true,"none":null}}`, name, i/1000, i%1000, i*10, 100+i)
}

func TestEveryEventBecomesOneItemInChunksOf25(t *testing.T) {
	srv := testserver.DynamoDB(t)
	db := &countingDB{Client: srv.Client()}
	var rej rejected
	p, err := table.New(db, sensorConfig(), rej.reject, nil)
	require.NoError(t, err)

	const n = 60
	var datas []string
	for i := range n {
		datas = append(datas, sensor("Rocinante", i))
	}
	datas = append(datas,
		`{"Name":"Shadowfax"}`,                           // no sort key
		`{"Name":"","StatusTime":"2024-05-01 10:00:00"}`, // empty key
		`{"Name":7,"StatusTime":"2024-05-01 10:00:00"}`,  // wrong key type
		`not json`, // does not decode
		`{"Name":"Big","StatusTime":"t","Blob":"`+strings.Repeat("x", 410<<10)+`"}`, // over 400 KB
	)
	resp, err := p.Invoke(context.Background(), event(datas...))
	require.NoError(t, err)
	require.Nil(t, resp)

	require.Equal(t, []int{25, 25, 10}, db.calls(), "BatchWriteItem sizes")
	items := srv.Scan(t, "UnicornSensorData")
	require.Len(t, items, n)

	require.Len(t, rej.recs, 5)
	reasons := make([]string, len(rej.why))
	for i, e := range rej.why {
		reasons[i] = e.Error()
	}
	require.Contains(t, reasons[0], `key attribute "StatusTime" is missing`)
	require.Contains(t, reasons[1], `key attribute "Name" is empty`)
	require.Contains(t, reasons[2], `key attribute "Name" must be a string`)
	require.ErrorIs(t, rej.why[3], processor.ErrDecode)
	require.Contains(t, reasons[4], "400 KB")
	for _, e := range append(rej.why[:3:3], rej.why[4]) {
		require.ErrorIs(t, e, dynamo.ErrInvalidItem)
	}

	// Attribute mapping: numbers as N, lists and maps nested.
	out, err := srv.Client().GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String("UnicornSensorData"),
		Key: map[string]types.AttributeValue{
			"Name":       &types.AttributeValueMemberS{Value: "Rocinante"},
			"StatusTime": &types.AttributeValueMemberS{Value: "2024-05-01 10:00:00.007"},
		},
	})
	require.NoError(t, err)
	require.Equal(t, &types.AttributeValueMemberN{Value: "70"}, out.Item["Distance"])
	require.Equal(t, &types.AttributeValueMemberN{Value: "47.61"}, out.Item["Latitude"])
	require.Equal(t, &types.AttributeValueMemberL{Value: []types.AttributeValue{
		&types.AttributeValueMemberS{Value: "a"}, &types.AttributeValueMemberN{Value: "1"},
	}}, out.Item["Tags"])
	require.Equal(t, &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
		"ok": &types.AttributeValueMemberBOOL{Value: true}, "none": &types.AttributeValueMemberNULL{Value: true},
	}}, out.Item["Meta"])
}

func TestOnlyUnprocessedItemsAreRetried(t *testing.T) {
	srv := testserver.DynamoDB(t)
	db := &countingDB{Client: srv.Client(), holdBack: 7, holdCalls: 2}
	var rej rejected
	p, err := table.New(db, sensorConfig(), rej.reject, nil)
	require.NoError(t, err)
	p.Writer().Retry.Base = time.Millisecond

	var datas []string
	for i := range 30 {
		datas = append(datas, sensor("Rocinante", i))
	}
	_, err = p.Invoke(context.Background(), event(datas...))
	require.NoError(t, err)
	// The wrapper holds back 7 items of each of the first two calls:
	// call 1 sends 18 of chunk 1's 25, call 2 (the retry of the 7) sends
	// none, call 3 sends the 7, and call 4 is chunk 2's 5 items.
	require.Equal(t, []int{25, 7, 7, 5}, db.calls())
	require.Len(t, srv.Scan(t, "UnicornSensorData"), 30)
	require.Empty(t, rej.recs)
}

// TestUnprocessedItemsHoldTheBatch: items DynamoDB keeps leaving
// unprocessed are retried, alone, until the invocation's ctx ends (here
// after the fifth call, however long the calls take); the batch is then
// given back as unavailable (not failed, not poison).
func TestUnprocessedItemsHoldTheBatch(t *testing.T) {
	srv := testserver.DynamoDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := &countingDB{Client: srv.Client(), holdBack: 1, holdCalls: 1 << 30, afterCall: func(calls int) {
		if calls == 5 {
			cancel()
		}
	}}
	p, err := table.New(db, sensorConfig(), (&rejected{}).reject, nil)
	require.NoError(t, err)
	p.Writer().Retry.Base = time.Millisecond
	p.Writer().Retry.Ceiling = 20 * time.Millisecond
	_, err = p.Invoke(ctx, event(sensor("Rocinante", 1), sensor("Rocinante", 2)))
	require.ErrorIs(t, err, sink.ErrUnavailable)
	require.False(t, sink.IsPoison(err))
	require.ErrorContains(t, err, "dynamodb table UnicornSensorData unavailable since")
	require.ErrorContains(t, err, "1 of the items unprocessed")
	calls := db.calls()
	require.Greater(t, len(calls), 3)
	require.Equal(t, 2, calls[0])
	for _, n := range calls[1:] {
		require.Equal(t, 1, n, "only the unprocessed item is sent again")
	}
}

func TestSameKeyTwiceInABatchKeepsTheLater(t *testing.T) {
	srv := testserver.DynamoDB(t)
	db := &countingDB{Client: srv.Client()}
	p, err := table.New(db, sensorConfig(), (&rejected{}).reject, nil)
	require.NoError(t, err)
	_, err = p.Invoke(context.Background(), event(
		`{"Name":"R","StatusTime":"t1","v":1}`,
		`{"Name":"R","StatusTime":"t2","v":2}`,
		`{"Name":"R","StatusTime":"t1","v":3}`,
	))
	require.NoError(t, err)
	items := srv.Scan(t, "UnicornSensorData")
	require.Len(t, items, 2)
	for _, it := range items {
		if it["StatusTime"].(*types.AttributeValueMemberS).Value == "t1" {
			require.Equal(t, &types.AttributeValueMemberN{Value: "3"}, it["v"])
		}
	}
}

func TestExistingTableKeysAreRead(t *testing.T) {
	srv := testserver.DynamoDB(t)
	ctx := context.Background()
	_, err := srv.Client().CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String("Readings"),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeN}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
	})
	require.NoError(t, err)
	var rej rejected
	p, err := table.New(srv.Client(), table.Config{Table: "Readings"}, rej.reject, nil)
	require.NoError(t, err)
	_, err = p.Invoke(ctx, event(`{"id":1}`, `{"id":"2"}`, `{"id":3.5}`))
	require.NoError(t, err)
	require.Len(t, srv.Scan(t, "Readings"), 2)
	require.Len(t, rej.why, 1)
	require.ErrorContains(t, rej.why[0], `key attribute "id" must be a number`)

	// A missing table without createTable holds the batch until it
	// exists (here: until the invocation's deadline).
	p, err = table.New(srv.Client(), table.Config{Table: "Missing"}, rej.reject, nil)
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = p.Invoke(short, event(`{"id":1}`))
	require.ErrorIs(t, err, sink.ErrUnavailable)
	var nf *types.ResourceNotFoundException
	require.True(t, errors.As(err, &nf), "got %v", err)
}

func TestCheckNamesEveryProblem(t *testing.T) {
	err := table.Builtin.Check(map[string]any{
		"endpoint":    "localhost:8000",
		"createTable": map[string]any{"sortKey": "StatusTime", "sortKeyType": "X"},
		"decode":      map[string]any{"format": "csv"},
		"tabel":       "x",
	})
	require.ErrorContains(t, err, "tabel: unknown option")

	err = table.Builtin.Check(map[string]any{
		"endpoint":    "localhost:8000",
		"createTable": map[string]any{"sortKey": "StatusTime", "sortKeyType": "X"},
		"decode":      map[string]any{"format": "csv"},
	})
	for _, want := range []string{"table: is required", "endpoint: want an http", "createTable.partitionKey: is required", "createTable.sortKeyType: must be S, N or B", "decode.columns"} {
		require.ErrorContains(t, err, want)
	}
	require.NoError(t, table.Builtin.Check(map[string]any{
		"table": "UnicornSensorData", "endpoint": "http://127.0.0.1:8000", "region": "us-east-1",
		"createTable": map[string]any{"partitionKey": "Name", "sortKey": "StatusTime"},
	}))
}

func TestChunksAreBoundedByBytes(t *testing.T) {
	srv := testserver.DynamoDB(t)
	db := &countingDB{Client: srv.Client()}
	p, err := table.New(db, sensorConfig(), (&rejected{}).reject, nil)
	require.NoError(t, err)
	// Each item is about 1 KB; a 16 MB request of 25 items of at most
	// 400 KB cannot happen, so the cap is lowered to see it bind.
	p.Writer().MaxBytes = 2500
	var datas []string
	for i := range 7 {
		datas = append(datas, fmt.Sprintf(`{"Name":"R","StatusTime":"t%d","pad":%q}`, i, strings.Repeat("x", 1000)))
	}
	_, err = p.Invoke(context.Background(), event(datas...))
	require.NoError(t, err)
	require.Equal(t, []int{2, 2, 2, 1}, db.calls())
	require.Len(t, srv.Scan(t, "UnicornSensorData"), 7)

	item := dynamo.Item{"k": &types.AttributeValueMemberS{Value: strings.Repeat("x", 100)}, "n": &types.AttributeValueMemberN{Value: "12345"}}
	require.Equal(t, 1+100+1+4, dynamo.ItemSize(item))
}
