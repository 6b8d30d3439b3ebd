package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/spf13/cobra"
)

// waitLimit bounds how long create and delete wait for the stream state.
const waitLimit = 5 * time.Minute

func newStreamCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stream",
		Short: "Create, list, describe and delete streams",
	}
	cmd.AddCommand(newStreamCreate(e), newStreamList(e), newStreamDescribe(e), newStreamDelete(e))
	return cmd
}

func newStreamCreate(e *env) *cobra.Command {
	var (
		shards    int
		retention int
		tags      map[string]string
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a stream and wait until it is ACTIVE",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if shards < 1 {
				return usagef("--shards %d: must be at least 1", shards)
			}
			if retention != 0 && (retention < 24 || retention > 8760) {
				return usagef("--retention-hours %d: must be from 24 to 8760", retention)
			}
			ctx := cmd.Context()
			client, err := e.client(ctx)
			if err != nil {
				return err
			}
			name := args[0]
			in := &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(int32(shards))}
			if len(tags) > 0 {
				in.Tags = tags
			}
			if _, err := client.CreateStream(ctx, in); err != nil {
				return err
			}
			if err := waitActive(ctx, client, name); err != nil {
				return err
			}
			if retention > 24 {
				if _, err := client.IncreaseStreamRetentionPeriod(ctx, &kinesis.IncreaseStreamRetentionPeriodInput{
					StreamName: aws.String(name), RetentionPeriodHours: aws.Int32(int32(retention)),
				}); err != nil {
					return err
				}
				if err := waitActive(ctx, client, name); err != nil {
					return err
				}
			}
			fmt.Fprintf(e.stderr, "runnel: stream %s is ACTIVE with %d shard(s)\n", name, shards)
			return nil
		},
	}
	cmd.Flags().IntVar(&shards, "shards", 1, "number of shards")
	cmd.Flags().IntVar(&retention, "retention-hours", 0, "retention period in hours, 24 to 8760 (default 24)")
	cmd.Flags().StringToStringVar(&tags, "tags", nil, "tags as key=value,key=value")
	return cmd
}

func waitActive(ctx context.Context, client *kinesis.Client, name string) error {
	w := kinesis.NewStreamExistsWaiter(client, func(o *kinesis.StreamExistsWaiterOptions) {
		o.MinDelay = 500 * time.Millisecond
		o.MaxDelay = 10 * time.Second
	})
	if err := w.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String(name)}, waitLimit); err != nil {
		return fmt.Errorf("waiting for stream %s to become ACTIVE: %w", name, err)
	}
	return nil
}

func newStreamList(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List stream names, one per line",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			client, err := e.client(ctx)
			if err != nil {
				return err
			}
			in := &kinesis.ListStreamsInput{}
			for {
				out, err := client.ListStreams(ctx, in)
				if err != nil {
					return err
				}
				for _, n := range out.StreamNames {
					fmt.Fprintln(e.stdout, n)
				}
				if !aws.ToBool(out.HasMoreStreams) || len(out.StreamNames) == 0 {
					return nil
				}
				// NextToken where the server offers it, otherwise the
				// older ExclusiveStartStreamName paging.
				if out.NextToken != nil {
					in = &kinesis.ListStreamsInput{NextToken: out.NextToken}
				} else {
					in = &kinesis.ListStreamsInput{ExclusiveStartStreamName: aws.String(out.StreamNames[len(out.StreamNames)-1])}
				}
			}
		},
	}
}

// shardLister is the part of the Kinesis client listShards uses.
type shardLister interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
}

// listShards returns every shard of a stream, following NextToken.
func listShards(ctx context.Context, client shardLister, name string) ([]types.Shard, error) {
	var shards []types.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(name)}
	for {
		out, err := client.ListShards(ctx, in)
		if err != nil {
			return nil, err
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil {
			return shards, nil
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

func newStreamDescribe(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a stream's status, mode, retention and shards",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			client, err := e.client(ctx)
			if err != nil {
				return err
			}
			sum, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(args[0])})
			if err != nil {
				return err
			}
			shards, err := listShards(ctx, client, args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printSDKJSON(e.stdout, struct {
					StreamDescriptionSummary *types.StreamDescriptionSummary
					Shards                   []types.Shard
				}{sum.StreamDescriptionSummary, shards})
			}
			return printDescription(e.stdout, sum.StreamDescriptionSummary, shards)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the DescribeStreamSummary and ListShards results as JSON")
	return cmd
}

func printDescription(w io.Writer, d *types.StreamDescriptionSummary, shards []types.Shard) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	mode := "PROVISIONED"
	if d.StreamModeDetails != nil {
		mode = string(d.StreamModeDetails.StreamMode)
	}
	fmt.Fprintf(tw, "Name:\t%s\n", aws.ToString(d.StreamName))
	fmt.Fprintf(tw, "ARN:\t%s\n", aws.ToString(d.StreamARN))
	fmt.Fprintf(tw, "Status:\t%s\n", d.StreamStatus)
	fmt.Fprintf(tw, "Mode:\t%s\n", mode)
	fmt.Fprintf(tw, "Retention:\t%d hours\n", aws.ToInt32(d.RetentionPeriodHours))
	if d.StreamCreationTimestamp != nil {
		fmt.Fprintf(tw, "Created:\t%s\n", d.StreamCreationTimestamp.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "Open shards:\t%d\n", aws.ToInt32(d.OpenShardCount))
	if d.EncryptionType != "" {
		fmt.Fprintf(tw, "Encryption:\t%s\n", d.EncryptionType)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SHARD\tSTATE\tHASH KEYS\tSHARE\tPARENTS")
	for _, s := range shards {
		state := "open"
		if s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil {
			state = "closed"
		}
		var lo, hi string
		if s.HashKeyRange != nil {
			lo, hi = aws.ToString(s.HashKeyRange.StartingHashKey), aws.ToString(s.HashKeyRange.EndingHashKey)
		}
		parents := aws.ToString(s.ParentShardId)
		if p := aws.ToString(s.AdjacentParentShardId); p != "" {
			parents += "," + p
		}
		if parents == "" {
			parents = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s - %s\t%s\t%s\n", aws.ToString(s.ShardId), state, lo, hi, hashShare(lo, hi), parents)
	}
	return tw.Flush()
}

// hashShare is the fraction of the 128-bit hash-key space in [lo, hi], as
// a percentage.
func hashShare(lo, hi string) string {
	a, ok1 := new(big.Int).SetString(lo, 10)
	b, ok2 := new(big.Int).SetString(hi, 10)
	if !ok1 || !ok2 || b.Cmp(a) < 0 {
		return "?"
	}
	n := new(big.Int).Sub(b, a)
	n.Add(n, big.NewInt(1))
	f, _ := new(big.Float).Quo(new(big.Float).SetInt(n), new(big.Float).SetInt(new(big.Int).Lsh(big.NewInt(1), 128))).Float64()
	return fmt.Sprintf("%.1f%%", f*100)
}

func newStreamDelete(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a stream and wait until it is gone",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			client, err := e.client(ctx)
			if err != nil {
				return err
			}
			name := args[0]
			if _, err := client.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String(name)}); err != nil {
				return err
			}
			w := kinesis.NewStreamNotExistsWaiter(client, func(o *kinesis.StreamNotExistsWaiterOptions) {
				o.MinDelay = 500 * time.Millisecond
				o.MaxDelay = 10 * time.Second
			})
			if err := w.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String(name)}, waitLimit); err != nil {
				return fmt.Errorf("waiting for stream %s to be deleted: %w", name, err)
			}
			fmt.Fprintf(e.stderr, "runnel: stream %s deleted\n", name)
			return nil
		},
	}
}

// printSDKJSON prints SDK output shapes as indented JSON without the
// members the service did not send: the SDK's structs hold them as nil
// pointers and slices, which encoding/json would print as null, where the
// service's own JSON (and the aws CLI) leave them out.
func printSDKJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(dropNulls(doc))
}

// dropNulls removes null members from the objects in a decoded JSON value.
func dropNulls(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, m := range v {
			if m == nil {
				delete(v, k)
				continue
			}
			v[k] = dropNulls(m)
		}
	case []any:
		for i, m := range v {
			v[i] = dropNulls(m)
		}
	}
	return v
}
