package consumer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/runnel-dev/runnel/internal/backoff"
)

// DynamoDBAPI is the part of the DynamoDB API the DynamoDB lease store
// calls; the aws-sdk-go-v2 *dynamodb.Client satisfies it.
type DynamoDBAPI interface {
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

var _ DynamoDBAPI = (*dynamodb.Client)(nil)

// The KCL lease-table attribute names.
const (
	attrLeaseKey        = "leaseKey"
	attrLeaseOwner      = "leaseOwner"
	attrLeaseCounter    = "leaseCounter"
	attrCheckpoint      = "checkpoint"
	attrCheckpointSub   = "checkpointSubSequenceNumber"
	attrOwnerSwitches   = "ownerSwitchesSinceCheckpoint"
	attrParentShardID   = "parentShardId"
	attrCheckpointOwner = "checkpointOwner"
)

// DynamoDBStore is a LeaseStore in a DynamoDB table laid out as the KCL
// lease table (hash key leaseKey; leaseOwner, leaseCounter, checkpoint,
// checkpointSubSequenceNumber, ownerSwitchesSinceCheckpoint,
// parentShardId as a string set, checkpointOwner for hand-offs), so
// workers on several machines coordinate through it. Every update is a
// conditional write. It is safe for concurrent use.
type DynamoDBStore struct {
	api   DynamoDBAPI
	table string
}

var _ LeaseStore = (*DynamoDBStore)(nil)

// NewDynamoDBStore returns a store on table, creating the table
// (on-demand capacity) if it does not exist and waiting until it is
// active.
func NewDynamoDBStore(ctx context.Context, api DynamoDBAPI, table string) (*DynamoDBStore, error) {
	s := &DynamoDBStore{api: api, table: table}
	_, err := api.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(table),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(attrLeaseKey), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(attrLeaseKey), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return nil, fmt.Errorf("creating lease table %s: %w", table, err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for attempt := 1; ; attempt++ {
		out, err := api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		if err == nil && out.Table != nil && out.Table.TableStatus == types.TableStatusActive {
			return s, nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("status %s", out.Table.TableStatus)
			}
			return nil, fmt.Errorf("waiting for lease table %s: %w", table, err)
		}
		if !backoff.Sleep(ctx, backoff.Delay(attempt, 50*time.Millisecond, time.Second)) {
			return nil, ctx.Err()
		}
	}
}

func (s *DynamoDBStore) key(k string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrLeaseKey: &types.AttributeValueMemberS{Value: k}}
}

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func leaseItem(l Lease) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		attrLeaseKey:      str(l.Key),
		attrLeaseCounter:  num(l.Counter),
		attrCheckpoint:    str(l.Checkpoint.SequenceNumber),
		attrCheckpointSub: num(l.Checkpoint.SubSequenceNumber),
		attrOwnerSwitches: num(l.OwnerSwitchesSinceCheckpoint),
	}
	if l.Owner != "" {
		item[attrLeaseOwner] = str(l.Owner)
	}
	if l.CheckpointOwner != "" {
		item[attrCheckpointOwner] = str(l.CheckpointOwner)
	}
	if len(l.ParentShardIDs) > 0 {
		item[attrParentShardID] = &types.AttributeValueMemberSS{Value: l.ParentShardIDs}
	}
	return item
}

func itemLease(item map[string]types.AttributeValue) (Lease, error) {
	var l Lease
	getS := func(k string) string {
		if v, ok := item[k].(*types.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	getN := func(k string) (int64, error) {
		v, ok := item[k].(*types.AttributeValueMemberN)
		if !ok {
			return 0, nil
		}
		n, err := strconv.ParseInt(v.Value, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("attribute %s: %w", k, err)
		}
		return n, nil
	}
	l.Key = getS(attrLeaseKey)
	if l.Key == "" {
		return l, errors.New("lease item without leaseKey")
	}
	l.Owner = getS(attrLeaseOwner)
	l.CheckpointOwner = getS(attrCheckpointOwner)
	l.Checkpoint.SequenceNumber = getS(attrCheckpoint)
	var err error
	if l.Counter, err = getN(attrLeaseCounter); err != nil {
		return l, err
	}
	if l.Checkpoint.SubSequenceNumber, err = getN(attrCheckpointSub); err != nil {
		return l, err
	}
	if l.OwnerSwitchesSinceCheckpoint, err = getN(attrOwnerSwitches); err != nil {
		return l, err
	}
	if ss, ok := item[attrParentShardID].(*types.AttributeValueMemberSS); ok {
		l.ParentShardIDs = append([]string(nil), ss.Value...)
		sort.Strings(l.ParentShardIDs)
	}
	return l, nil
}

// ListLeases implements LeaseStore.
func (s *DynamoDBStore) ListLeases(ctx context.Context) ([]Lease, error) {
	var out []Lease
	in := &dynamodb.ScanInput{TableName: aws.String(s.table), ConsistentRead: aws.Bool(true)}
	for pages := 0; pages < 100000; pages++ {
		res, err := s.api.Scan(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("scanning lease table %s: %w", s.table, err)
		}
		for _, item := range res.Items {
			l, err := itemLease(item)
			if err != nil {
				return nil, fmt.Errorf("lease table %s: %w", s.table, err)
			}
			out = append(out, l)
		}
		if len(res.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = res.LastEvaluatedKey
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// GetLease implements LeaseStore.
func (s *DynamoDBStore) GetLease(ctx context.Context, key string) (Lease, error) {
	res, err := s.api.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: s.key(key), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return Lease{}, fmt.Errorf("reading lease %s: %w", key, err)
	}
	if len(res.Item) == 0 {
		return Lease{}, ErrLeaseNotFound
	}
	return itemLease(res.Item)
}

// CreateLease implements LeaseStore.
func (s *DynamoDBStore) CreateLease(ctx context.Context, l Lease) error {
	_, err := s.api.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           aws.String(s.table),
		Item:                leaseItem(l),
		ConditionExpression: aws.String("attribute_not_exists(" + attrLeaseKey + ")"),
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return ErrLeaseExists
	}
	if err != nil {
		return fmt.Errorf("creating lease %s: %w", l.Key, err)
	}
	return nil
}

// update is one conditional UpdateItem returning the new lease.
func (s *DynamoDBStore) update(ctx context.Context, key, cond, upd string, vals map[string]types.AttributeValue) (Lease, error) {
	in := &dynamodb.UpdateItemInput{
		TableName:           aws.String(s.table),
		Key:                 s.key(key),
		ConditionExpression: aws.String(cond),
		UpdateExpression:    aws.String(upd),
		ReturnValues:        types.ReturnValueAllNew,
	}
	if len(vals) > 0 {
		in.ExpressionAttributeValues = vals
	}
	res, err := s.api.UpdateItem(ctx, in)
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return Lease{}, ErrLeaseConflict
	}
	if err != nil {
		return Lease{}, fmt.Errorf("updating lease %s: %w", key, err)
	}
	return itemLease(res.Attributes)
}

// ownerCond is the condition "counter and owner are still l's".
func ownerCond(l Lease, vals map[string]types.AttributeValue) string {
	vals[":c"] = num(l.Counter)
	if l.Owner == "" {
		return attrLeaseCounter + " = :c AND attribute_not_exists(" + attrLeaseOwner + ")"
	}
	vals[":o"] = str(l.Owner)
	return attrLeaseCounter + " = :c AND " + attrLeaseOwner + " = :o"
}

// TakeLease implements LeaseStore.
func (s *DynamoDBStore) TakeLease(ctx context.Context, l Lease, owner string, handOff bool) (Lease, error) {
	vals := map[string]types.AttributeValue{
		":c":  num(l.Counter),
		":n":  num(l.Counter + 1),
		":me": str(owner),
	}
	upd := "SET " + attrLeaseOwner + " = :me, " + attrLeaseCounter + " = :n"
	if l.Owner != owner {
		vals[":one"] = num(1)
		vals[":zero"] = num(0)
		upd += ", " + attrOwnerSwitches + " = if_not_exists(" + attrOwnerSwitches + ", :zero) + :one"
	}
	if handOff && l.Owner != "" && l.Owner != owner {
		vals[":prev"] = str(l.Owner)
		upd += ", " + attrCheckpointOwner + " = :prev"
	} else {
		upd += " REMOVE " + attrCheckpointOwner
	}
	return s.update(ctx, l.Key, attrLeaseCounter+" = :c", upd, vals)
}

// RenewLease implements LeaseStore.
func (s *DynamoDBStore) RenewLease(ctx context.Context, l Lease) (Lease, error) {
	vals := map[string]types.AttributeValue{":n": num(l.Counter + 1)}
	cond := ownerCond(l, vals)
	return s.update(ctx, l.Key, cond, "SET "+attrLeaseCounter+" = :n", vals)
}

// UpdateCheckpoint implements LeaseStore.
func (s *DynamoDBStore) UpdateCheckpoint(ctx context.Context, l Lease, cp Checkpoint) (Lease, error) {
	vals := map[string]types.AttributeValue{
		":n":    num(l.Counter + 1),
		":cp":   str(cp.SequenceNumber),
		":sub":  num(cp.SubSequenceNumber),
		":zero": num(0),
	}
	cond := ownerCond(l, vals)
	upd := "SET " + attrLeaseCounter + " = :n, " + attrCheckpoint + " = :cp, " + attrCheckpointSub + " = :sub, " + attrOwnerSwitches + " = :zero"
	return s.update(ctx, l.Key, cond, upd, vals)
}

// HandOff implements LeaseStore.
func (s *DynamoDBStore) HandOff(ctx context.Context, key, from string, cp *Checkpoint) (Lease, error) {
	if from == "" {
		return Lease{}, ErrLeaseConflict
	}
	vals := map[string]types.AttributeValue{":from": str(from)}
	upd := "REMOVE " + attrCheckpointOwner
	if cp != nil {
		vals[":cp"] = str(cp.SequenceNumber)
		vals[":sub"] = num(cp.SubSequenceNumber)
		vals[":zero"] = num(0)
		upd = "SET " + attrCheckpoint + " = :cp, " + attrCheckpointSub + " = :sub, " + attrOwnerSwitches + " = :zero " + upd
	}
	return s.update(ctx, key, attrCheckpointOwner+" = :from", upd, vals)
}

// EvictLease implements LeaseStore.
func (s *DynamoDBStore) EvictLease(ctx context.Context, l Lease) (Lease, error) {
	vals := map[string]types.AttributeValue{":n": num(l.Counter + 1)}
	cond := ownerCond(l, vals)
	return s.update(ctx, l.Key, cond, "SET "+attrLeaseCounter+" = :n REMOVE "+attrLeaseOwner+", "+attrCheckpointOwner, vals)
}

// DeleteLease implements LeaseStore.
func (s *DynamoDBStore) DeleteLease(ctx context.Context, l Lease) error {
	_, err := s.api.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 aws.String(s.table),
		Key:                       s.key(l.Key),
		ConditionExpression:       aws.String(attrLeaseCounter + " = :c"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":c": num(l.Counter)},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return ErrLeaseConflict
	}
	if err != nil {
		return fmt.Errorf("deleting lease %s: %w", l.Key, err)
	}
	return nil
}
