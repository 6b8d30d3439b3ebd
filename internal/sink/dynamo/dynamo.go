// Package dynamo is the DynamoDB sink: items written to one table with
// BatchWriteItem, at most 25 items and 16 MB per call, only the
// UnprocessedItems sent again. A throttling, failing or unreachable
// DynamoDB is retried through the writer's sink.Retry for as long as the
// caller's ctx lasts; an error caused by the items themselves is marked
// sink.Poison. The table and window processors write through it.
package dynamo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/runnel-dev/runnel/internal/backoff"
	"github.com/runnel-dev/runnel/internal/kinesisclient"
	"github.com/runnel-dev/runnel/internal/options"
	"github.com/runnel-dev/runnel/internal/sink"
)

// API is the part of the DynamoDB API the writer calls; the aws-sdk-go-v2
// *dynamodb.Client satisfies it.
type API interface {
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
}

var _ API = (*dynamodb.Client)(nil)

// DynamoDB's BatchWriteItem and item limits.
const (
	MaxBatchItems = 25
	MaxBatchBytes = 16 << 20
	MaxItemBytes  = 400 << 10
)

// ErrInvalidItem marks an item DynamoDB would reject whatever the retries:
// a key attribute missing or of the wrong type, or an item over 400 KB.
var ErrInvalidItem = errors.New("invalid item")

// Item is one DynamoDB item.
type Item = map[string]types.AttributeValue

// KeyAttribute is one attribute of a table's primary key.
type KeyAttribute struct {
	Name string
	// Type is S, N or B.
	Type types.ScalarAttributeType
}

// Writer puts items into one table with BatchWriteItem: at most 25 items
// and 16 MB per call, retrying only the UnprocessedItems. A throttled,
// failing or unreachable DynamoDB is retried through Retry for as long as
// the caller's ctx lasts; only an error caused by the items themselves
// (ValidationException and the like) ends a Put at once, marked with
// sink.Poison. It is safe for concurrent use once Prepare has returned.
type Writer struct {
	api   API
	table string
	keys  []KeyAttribute

	// Retry is the policy of the writes to the table (backoff, logging,
	// the name "dynamodb table T" in status).
	Retry *sink.Retry
	// MaxBytes bounds the estimated size (ItemSize) of the items of one
	// call. Default MaxBatchBytes (16 MB).
	MaxBytes int
}

var _ sink.Writer[Item] = (*Writer)(nil)

// NewWriter returns a writer for table. Open (or Prepare) must be called
// before Put and Write.
func NewWriter(api API, table string) *Writer {
	return &Writer{api: api, table: table, Retry: &sink.Retry{Target: "dynamodb table " + table}, MaxBytes: MaxBatchBytes}
}

// Open is Prepare retried through Retry while DynamoDB cannot be reached
// or the table is missing: it returns nil, a poison error, or (ctx ended
// first) an error wrapping sink.ErrUnavailable.
func (w *Writer) Open(ctx context.Context, create *CreateTable) error {
	return w.Retry.Do(ctx, func(ctx context.Context) error { return Classify(w.Prepare(ctx, create)) })
}

// Write is Put without the accounting: the sink.Writer of a table.
func (w *Writer) Write(ctx context.Context, items []Item) error {
	_, err := w.Put(ctx, items)
	return err
}

// Prepare learns the table's key schema, first creating the table when it
// does not exist and create is set (on-demand capacity), and waits until
// the table is ACTIVE (at most two minutes).
func (w *Writer) Prepare(ctx context.Context, create *CreateTable) error {
	out, err := w.api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(w.table)})
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) && create != nil {
		in := create.Input(w.table)
		if _, err := w.api.CreateTable(ctx, in); err != nil {
			var inUse *types.ResourceInUseException
			if !errors.As(err, &inUse) {
				return fmt.Errorf("creating table %s: %w", w.table, err)
			}
		}
		out, err = w.waitActive(ctx)
	}
	if err != nil {
		return fmt.Errorf("describing table %s: %w", w.table, err)
	}
	if out.Table.TableStatus != types.TableStatusActive {
		if out, err = w.waitActive(ctx); err != nil {
			return err
		}
	}
	attrTypes := map[string]types.ScalarAttributeType{}
	for _, d := range out.Table.AttributeDefinitions {
		attrTypes[aws.ToString(d.AttributeName)] = d.AttributeType
	}
	w.keys = w.keys[:0]
	for _, k := range out.Table.KeySchema {
		name := aws.ToString(k.AttributeName)
		w.keys = append(w.keys, KeyAttribute{Name: name, Type: attrTypes[name]})
	}
	return nil
}

func (w *Writer) waitActive(ctx context.Context) (*dynamodb.DescribeTableOutput, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for attempt := 0; ; attempt++ {
		out, err := w.api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(w.table)})
		var nf *types.ResourceNotFoundException
		if err != nil && !errors.As(err, &nf) {
			return nil, fmt.Errorf("describing table %s: %w", w.table, err)
		}
		if err == nil && out.Table.TableStatus == types.TableStatusActive {
			return out, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("table %s is not ACTIVE after 2 minutes", w.table)
		}
		if !backoff.Sleep(ctx, backoff.Delay(attempt+1, 100*time.Millisecond, 2*time.Second)) {
			return nil, context.Cause(ctx)
		}
	}
}

// Keys returns the table's key attributes, partition key first.
func (w *Writer) Keys() []KeyAttribute { return w.keys }

// Check reports, wrapping ErrInvalidItem, why DynamoDB would reject item:
// a key attribute is missing, empty or not of the key's type, or the item
// is larger than 400 KB.
func (w *Writer) Check(item Item) error {
	for _, k := range w.keys {
		v, ok := item[k.Name]
		if !ok {
			return fmt.Errorf("%w: key attribute %q is missing", ErrInvalidItem, k.Name)
		}
		switch k.Type {
		case types.ScalarAttributeTypeS:
			s, ok := v.(*types.AttributeValueMemberS)
			if !ok {
				return fmt.Errorf("%w: key attribute %q must be a string", ErrInvalidItem, k.Name)
			}
			if s.Value == "" {
				return fmt.Errorf("%w: key attribute %q is empty", ErrInvalidItem, k.Name)
			}
		case types.ScalarAttributeTypeN:
			if _, ok := v.(*types.AttributeValueMemberN); !ok {
				return fmt.Errorf("%w: key attribute %q must be a number", ErrInvalidItem, k.Name)
			}
		case types.ScalarAttributeTypeB:
			b, ok := v.(*types.AttributeValueMemberB)
			if !ok || len(b.Value) == 0 {
				return fmt.Errorf("%w: key attribute %q must be non-empty binary", ErrInvalidItem, k.Name)
			}
		}
	}
	if n := ItemSize(item); n > MaxItemBytes {
		return fmt.Errorf("%w: item of %d bytes is over DynamoDB's 400 KB limit", ErrInvalidItem, n)
	}
	return nil
}

// keyOf identifies an item by its key attributes' values.
func (w *Writer) keyOf(item Item) string {
	var b strings.Builder
	for _, k := range w.keys {
		switch v := item[k.Name].(type) {
		case *types.AttributeValueMemberS:
			b.WriteString("S" + v.Value)
		case *types.AttributeValueMemberN:
			b.WriteString("N" + v.Value)
		case *types.AttributeValueMemberB:
			b.WriteString("B" + string(v.Value))
		}
		b.WriteByte(0)
	}
	return b.String()
}

// PutStats accounts for one Put.
type PutStats struct {
	Calls   int // BatchWriteItem calls made
	Retried int // item re-sends (UnprocessedItems)
	// Replaced counts items dropped because a later item of the same
	// batch has the same key (a batch must not name a key twice; the
	// later item is what sequential puts would have left).
	Replaced int
}

// Put writes items, which must have passed Check, in order: when two
// items have the same key the later one is written. It returns once every
// item is written, with a poison error (see Writer), or, when ctx ends
// first, with an error wrapping sink.ErrUnavailable.
func (w *Writer) Put(ctx context.Context, items []Item) (PutStats, error) {
	var st PutStats
	// Later items replace earlier ones with the same key: one
	// BatchWriteItem must not hold a key twice, and the end state of
	// puts in order is the last item of each key.
	index := make(map[string]int, len(items))
	kept := make([]Item, 0, len(items))
	for _, it := range items {
		k := w.keyOf(it)
		if i, ok := index[k]; ok {
			kept[i] = it
			st.Replaced++
			continue
		}
		index[k] = len(kept)
		kept = append(kept, it)
	}
	var chunk []types.WriteRequest
	size := 0
	for _, it := range kept {
		n := ItemSize(it)
		if len(chunk) == MaxBatchItems || (len(chunk) > 0 && size+n > w.MaxBytes) {
			if err := w.write(ctx, chunk, &st); err != nil {
				return st, err
			}
			chunk, size = nil, 0
		}
		chunk = append(chunk, types.WriteRequest{PutRequest: &types.PutRequest{Item: it}})
		size += n
	}
	if len(chunk) > 0 {
		if err := w.write(ctx, chunk, &st); err != nil {
			return st, err
		}
	}
	return st, nil
}

// write sends one chunk, retrying its UnprocessedItems.
func (w *Writer) write(ctx context.Context, reqs []types.WriteRequest, st *PutStats) error {
	return w.Retry.Do(ctx, func(ctx context.Context) error {
		st.Calls++
		out, err := w.api.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{
			RequestItems: map[string][]types.WriteRequest{w.table: reqs},
		})
		if err != nil {
			return Classify(fmt.Errorf("BatchWriteItem: %w", err))
		}
		if left := out.UnprocessedItems[w.table]; len(left) > 0 {
			st.Retried += len(left)
			reqs = left
			return fmt.Errorf("%d of the items unprocessed (throttled)", len(left))
		}
		return nil
	})
}

// Classify marks err as poison when DynamoDB refused the items
// themselves (the errors a request earns by what it holds: sending it
// again cannot succeed); throttling, server errors, a missing table or no
// answer at all are for retrying.
func Classify(err error) error {
	return sink.PoisonCodes(err, "ValidationException", "ItemCollectionSizeLimitExceededException", "SerializationException")
}

// ItemSize estimates an item's size the way DynamoDB counts it: names
// plus values (strings and binary by length, numbers by significant
// digits, containers with their overhead).
func ItemSize(item Item) int {
	n := 0
	for k, v := range item {
		n += len(k) + valueSize(v)
	}
	return n
}

func valueSize(v types.AttributeValue) int {
	switch x := v.(type) {
	case *types.AttributeValueMemberS:
		return len(x.Value)
	case *types.AttributeValueMemberN:
		return (len(x.Value)+1)/2 + 1
	case *types.AttributeValueMemberB:
		return len(x.Value)
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range x.Value {
			n += len(k) + valueSize(e) + 1
		}
		return n
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range x.Value {
			n += valueSize(e) + 1
		}
		return n
	case *types.AttributeValueMemberSS:
		n := 0
		for _, s := range x.Value {
			n += len(s)
		}
		return n
	case *types.AttributeValueMemberNS:
		n := 0
		for _, s := range x.Value {
			n += (len(s)+1)/2 + 1
		}
		return n
	}
	return 0
}

// ItemFromFields converts decoded JSON fields into an item: strings as S,
// numbers as N (exactly as written), booleans as BOOL, null as NULL,
// objects as M and arrays as L. Float64 and integer values (from code
// rather than decoding) become N as well.
func ItemFromFields(fields map[string]any) (Item, error) {
	item := make(Item, len(fields))
	for k, v := range fields {
		av, err := attributeValue(v)
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", k, err)
		}
		item[k] = av
	}
	return item, nil
}

func attributeValue(v any) (types.AttributeValue, error) {
	switch x := v.(type) {
	case nil:
		return &types.AttributeValueMemberNULL{Value: true}, nil
	case string:
		return &types.AttributeValueMemberS{Value: x}, nil
	case json.Number:
		return &types.AttributeValueMemberN{Value: x.String()}, nil
	case bool:
		return &types.AttributeValueMemberBOOL{Value: x}, nil
	case float64, float32, int, int32, int64, uint, uint32, uint64:
		return &types.AttributeValueMemberN{Value: fmt.Sprint(x)}, nil
	case map[string]any:
		m, err := ItemFromFields(x)
		if err != nil {
			return nil, err
		}
		return &types.AttributeValueMemberM{Value: m}, nil
	case []any:
		l := make([]types.AttributeValue, len(x))
		for i, e := range x {
			av, err := attributeValue(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			l[i] = av
		}
		return &types.AttributeValueMemberL{Value: l}, nil
	}
	return nil, fmt.Errorf("unsupported value of type %T", v)
}

// CreateTableFields declares CreateTable as an option of a processor.
var CreateTableFields = []options.Field{
	{Name: "partitionKey", Required: true, Doc: "The partition (hash) key attribute."},
	{Name: "partitionKeyType", DefaultDoc: "S", Doc: "The partition key's type: S, N or B."},
	{Name: "sortKey", DefaultDoc: "none", Doc: "The sort (range) key attribute."},
	{Name: "sortKeyType", DefaultDoc: "S", Doc: "The sort key's type: S, N or B."},
}

// CreateTable declares the key of a table created when missing, with
// on-demand (PAY_PER_REQUEST) capacity.
type CreateTable struct {
	// PartitionKey is the partition (hash) key attribute. Required.
	PartitionKey string `json:"partitionKey" yaml:"partitionKey"`
	// PartitionKeyType is S (default), N or B.
	PartitionKeyType string `json:"partitionKeyType" yaml:"partitionKeyType"`
	// SortKey is the optional sort (range) key attribute.
	SortKey string `json:"sortKey" yaml:"sortKey"`
	// SortKeyType is S (default), N or B.
	SortKeyType string `json:"sortKeyType" yaml:"sortKeyType"`
}

// Validate reports the problems of the declaration, each named by
// prefix and field.
func (ct *CreateTable) Validate(prefix string) []error {
	var errs []error
	if ct.PartitionKey == "" {
		errs = append(errs, options.Errorf(prefix+".partitionKey", "is required"))
	}
	if ct.SortKey != "" && ct.SortKey == ct.PartitionKey {
		errs = append(errs, options.Errorf(prefix+".sortKey", "must differ from the partition key"))
	}
	for name, t := range map[string]string{"partitionKeyType": ct.PartitionKeyType, "sortKeyType": ct.SortKeyType} {
		switch t {
		case "", "S", "N", "B":
		default:
			errs = append(errs, options.Errorf(prefix+"."+name, "must be S, N or B, got %q", t))
		}
	}
	if ct.SortKey == "" && ct.SortKeyType != "" {
		errs = append(errs, options.Errorf(prefix+".sortKeyType", "given without a sortKey"))
	}
	return errs
}

func keyType(t string) types.ScalarAttributeType {
	if t == "" {
		return types.ScalarAttributeTypeS
	}
	return types.ScalarAttributeType(t)
}

// Input is the CreateTable request of table.
func (ct *CreateTable) Input(table string) *dynamodb.CreateTableInput {
	in := &dynamodb.CreateTableInput{
		TableName:   aws.String(table),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(ct.PartitionKey), AttributeType: keyType(ct.PartitionKeyType)},
		},
		KeySchema: []types.KeySchemaElement{{AttributeName: aws.String(ct.PartitionKey), KeyType: types.KeyTypeHash}},
	}
	if ct.SortKey != "" {
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{AttributeName: aws.String(ct.SortKey), AttributeType: keyType(ct.SortKeyType)})
		in.KeySchema = append(in.KeySchema, types.KeySchemaElement{AttributeName: aws.String(ct.SortKey), KeyType: types.KeyTypeRange})
	}
	return in
}

// NewClient returns a DynamoDB client for endpoint and region, each
// optional, configured by kinesisclient.Config: the endpoint defaults to
// AWS_ENDPOINT_URL_DYNAMODB or AWS_ENDPOINT_URL, else AWS DynamoDB, and
// credentials fall back to local ones off AWS.
func NewClient(ctx context.Context, endpoint, region string) (*dynamodb.Client, error) {
	cfg, err := kinesisclient.Config(ctx, endpoint, kinesisclient.Options{Region: region, Service: "DynamoDB"})
	if err != nil {
		return nil, err
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		o.BaseEndpoint = cfg.BaseEndpoint
	}), nil
}
