package kinesisapi_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"
)

func TestTags(t *testing.T) {
	e := start(t)
	e.createStream(t, "t", 1)
	name := aws.String("t")

	_, err := e.c.AddTagsToStream(e.ctx, &kinesis.AddTagsToStreamInput{StreamName: name, Tags: map[string]string{"b": "2", "a": "1", "c": ""}})
	require.NoError(t, err)

	out, err := e.c.ListTagsForStream(e.ctx, &kinesis.ListTagsForStreamInput{StreamName: name})
	require.NoError(t, err)
	require.Equal(t, []types.Tag{{Key: aws.String("a"), Value: aws.String("1")}, {Key: aws.String("b"), Value: aws.String("2")}, {Key: aws.String("c"), Value: aws.String("")}}, out.Tags)
	require.False(t, aws.ToBool(out.HasMoreTags))

	page, err := e.c.ListTagsForStream(e.ctx, &kinesis.ListTagsForStreamInput{StreamName: name, Limit: aws.Int32(1), ExclusiveStartTagKey: aws.String("a")})
	require.NoError(t, err)
	require.Len(t, page.Tags, 1)
	require.Equal(t, "b", aws.ToString(page.Tags[0].Key))
	require.True(t, aws.ToBool(page.HasMoreTags))

	_, err = e.c.RemoveTagsFromStream(e.ctx, &kinesis.RemoveTagsFromStreamInput{StreamName: name, TagKeys: []string{"a", "absent"}})
	require.NoError(t, err)
	out, err = e.c.ListTagsForStream(e.ctx, &kinesis.ListTagsForStreamInput{StreamARN: aws.String(e.srv.Service.ARN("t"))})
	require.NoError(t, err)
	require.Len(t, out.Tags, 2)

	eleven := map[string]string{}
	for i := range 11 {
		eleven[fmt.Sprint("k", i)] = "v"
	}
	tests := []struct {
		name string
		call func() error
		code string
		msg  string
	}{
		{"add eleven", func() error {
			_, err := e.c.AddTagsToStream(e.ctx, &kinesis.AddTagsToStreamInput{StreamName: name, Tags: eleven})
			return err
		}, "ValidationException", "Member must have length less than or equal to 10"},
		{"add none", func() error {
			_, err := e.c.AddTagsToStream(e.ctx, &kinesis.AddTagsToStreamInput{StreamName: name, Tags: map[string]string{}})
			return err
		}, "ValidationException", "Member must have length greater than or equal to 1"},
		{"long key", func() error {
			_, err := e.c.AddTagsToStream(e.ctx, &kinesis.AddTagsToStreamInput{StreamName: name, Tags: map[string]string{strings.Repeat("k", 129): "v"}})
			return err
		}, "ValidationException", "Map keys must satisfy constraint"},
		{"long value", func() error {
			_, err := e.c.AddTagsToStream(e.ctx, &kinesis.AddTagsToStreamInput{StreamName: name, Tags: map[string]string{"k": strings.Repeat("v", 257)}})
			return err
		}, "ValidationException", "Map value must satisfy constraint"},
		{"remove none", func() error {
			_, err := e.c.RemoveTagsFromStream(e.ctx, &kinesis.RemoveTagsFromStreamInput{StreamName: name, TagKeys: []string{}})
			return err
		}, "ValidationException", "at 'tagKeys'"},
		{"remove empty key", func() error {
			_, err := e.c.RemoveTagsFromStream(e.ctx, &kinesis.RemoveTagsFromStreamInput{StreamName: name, TagKeys: []string{""}})
			return err
		}, "ValidationException", "at 'tagKeys.1.member'"},
		{"list limit", func() error {
			_, err := e.c.ListTagsForStream(e.ctx, &kinesis.ListTagsForStreamInput{StreamName: name, Limit: aws.Int32(51)})
			return err
		}, "ValidationException", "Member must have value less than or equal to 50"},
		{"missing stream", func() error {
			_, err := e.c.ListTagsForStream(e.ctx, &kinesis.ListTagsForStreamInput{StreamName: aws.String("none")})
			return err
		}, "ResourceNotFoundException", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Contains(t, requireAPIError(t, tc.call(), tc.code), tc.msg)
		})
	}

	t.Run("more than fifty in total", func(t *testing.T) {
		var err error
		for i := 0; i < 6 && err == nil; i++ {
			tags := map[string]string{}
			for j := range 10 {
				tags[fmt.Sprintf("bulk-%d-%d", i, j)] = "v"
			}
			_, err = e.c.AddTagsToStream(e.ctx, &kinesis.AddTagsToStreamInput{StreamName: name, Tags: tags})
		}
		requireAPIError(t, err, "InvalidArgumentException")
	})
}
