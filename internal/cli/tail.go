package cli

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/runnel-dev/runnel/internal/backoff"
	"github.com/runnel-dev/runnel/internal/kpl"
)

const (
	// tailDiscoverEvery is how often a following tail looks for shards
	// created by resharding.
	tailDiscoverEvery = 10 * time.Second
	// tailThrottleWait is the pause after GetRecords is throttled beyond the
	// SDK's own retries.
	tailThrottleWait = time.Second
)

func newTailCommand(e *env) *cobra.Command {
	var (
		from     string
		follow   bool
		noFollow bool
		format   string
		poll     time.Duration
		kplRaw   bool
	)
	cmd := &cobra.Command{
		Use:   "tail STREAM",
		Short: "Print the records of every shard of a stream",
		Long: `Read every shard of STREAM concurrently and print each record's data as one
line (--format raw) or as a JSON object with shardId, sequenceNumber,
partitionKey, arrival and data (--format json; data is a string, or base64
with "dataEncoding":"base64" when it is not UTF-8).

Records that Kinesis Producer Library (KPL) producers aggregated are
unpacked into their user records, each printed with its own partition key
(and, in JSON, its subSequenceNumber), as the KCL and runnel run deliver
them; --kpl-raw prints the aggregates as stored.

By default tail follows the stream until interrupted, starting at the latest
record and picking up shards that resharding creates. With --no-follow it
starts at the oldest record (unless --from says otherwise) and stops once
every shard is caught up: it prints what the stream holds.`,
		Args: exactArgs("STREAM"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if follow && noFollow && cmd.Flags().Changed("follow") {
				return usagef("--follow and --no-follow contradict each other")
			}
			if noFollow && !cmd.Flags().Changed("from") {
				from = "trim-horizon"
			}
			var start types.ShardIteratorType
			switch from {
			case "latest":
				start = types.ShardIteratorTypeLatest
			case "trim-horizon":
				start = types.ShardIteratorTypeTrimHorizon
			default:
				return usagef("--from %q: want latest or trim-horizon", from)
			}
			if format != "raw" && format != "json" {
				return usagef("--format %q: want raw or json", format)
			}
			if poll <= 0 {
				return usagef("--poll-interval %s: must be positive", poll)
			}
			ctx := cmd.Context()
			client, err := e.client(ctx)
			if err != nil {
				return err
			}
			t := &tailer{
				api:    client,
				stream: args[0],
				start:  start,
				follow: follow && !noFollow,
				poll:   poll,
				out:    &recordWriter{w: e.stdout, json: format == "json", deaggregate: !kplRaw},
				logger: e.logger,
			}
			err = t.run(ctx)
			if ctx.Err() != nil {
				// Interrupted: a normal way to stop following.
				return nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "latest", "where to start in each shard: latest or trim-horizon (default latest, trim-horizon with --no-follow)")
	f.BoolVar(&follow, "follow", true, "keep reading as records arrive")
	f.BoolVar(&noFollow, "no-follow", false, "stop when every shard is caught up")
	f.StringVar(&format, "format", "raw", "output: raw (data only) or json")
	f.DurationVar(&poll, "poll-interval", 250*time.Millisecond, "pause after an empty GetRecords response")
	f.BoolVar(&kplRaw, "kpl-raw", false, "print KPL aggregated records as stored instead of their user records")
	return cmd
}

// tailAPI is the part of the Kinesis client tailer uses.
type tailAPI interface {
	shardLister
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

// tailer reads all shards of one stream.
type tailer struct {
	api    tailAPI
	stream string
	start  types.ShardIteratorType
	follow bool
	poll   time.Duration
	out    *recordWriter
	logger *slog.Logger
}

func (t *tailer) run(ctx context.Context) error {
	shards, err := listShards(ctx, t.api, t.stream)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	seen := make(map[string]bool)
	for _, s := range shards {
		id := aws.ToString(s.ShardId)
		seen[id] = true
		g.Go(func() error { return t.readShard(gctx, id, t.start) })
	}
	if t.follow {
		g.Go(func() error { return t.discover(gctx, g, seen) })
	}
	return g.Wait()
}

// discover starts a reader for every shard that appears after tail began.
// Such shards are new, so they are read from their beginning.
func (t *tailer) discover(ctx context.Context, g *errgroup.Group, seen map[string]bool) error {
	tick := time.NewTicker(tailDiscoverEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		shards, err := listShards(ctx, t.api, t.stream)
		if err != nil {
			var nf *types.ResourceNotFoundException
			if errors.As(err, &nf) {
				return err
			}
			t.logger.Warn("listing shards", "stream", t.stream, "err", err)
			continue
		}
		for _, s := range shards {
			id := aws.ToString(s.ShardId)
			if seen[id] {
				continue
			}
			seen[id] = true
			t.logger.Debug("new shard", "stream", t.stream, "shard", id)
			g.Go(func() error { return t.readShard(ctx, id, types.ShardIteratorTypeTrimHorizon) })
		}
	}
}

func (t *tailer) iterator(ctx context.Context, shardID string, typ types.ShardIteratorType, after string) (string, error) {
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(t.stream), ShardId: aws.String(shardID), ShardIteratorType: typ}
	if after != "" {
		in.ShardIteratorType = types.ShardIteratorTypeAfterSequenceNumber
		in.StartingSequenceNumber = aws.String(after)
	}
	out, err := t.api.GetShardIterator(ctx, in)
	if err != nil {
		return "", fmt.Errorf("getting an iterator for %s: %w", shardID, err)
	}
	return aws.ToString(out.ShardIterator), nil
}

// readShard prints one shard's records until the shard is closed and read
// to its end, or, when not following, until it is caught up.
func (t *tailer) readShard(ctx context.Context, shardID string, typ types.ShardIteratorType) error {
	log := t.logger.With("stream", t.stream, "shard", shardID)
	it, err := t.iterator(ctx, shardID, typ, "")
	if err != nil {
		return err
	}
	log.Debug("reading shard", "from", typ)
	var last string // sequence number of the last record printed
	for {
		out, err := t.api.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String(it)})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var expired *types.ExpiredIteratorException
			if errors.As(err, &expired) {
				log.Debug("iterator expired; getting a new one", "after", last)
				if it, err = t.iterator(ctx, shardID, typ, last); err != nil {
					return err
				}
				continue
			}
			var throttled *types.ProvisionedThroughputExceededException
			if errors.As(err, &throttled) {
				log.Debug("throttled")
				if !backoff.Sleep(ctx, tailThrottleWait) {
					return ctx.Err()
				}
				continue
			}
			return fmt.Errorf("reading %s: %w", shardID, err)
		}
		if len(out.Records) > 0 {
			if err := t.out.write(shardID, out.Records); err != nil {
				return err
			}
			last = aws.ToString(out.Records[len(out.Records)-1].SequenceNumber)
		}
		if out.NextShardIterator == nil {
			log.Debug("shard closed and read to its end")
			return nil
		}
		it = *out.NextShardIterator
		if len(out.Records) == 0 {
			if !t.follow && aws.ToInt64(out.MillisBehindLatest) == 0 {
				return nil
			}
			if !backoff.Sleep(ctx, t.poll) {
				return ctx.Err()
			}
		}
	}
}

// recordWriter prints records, one per line. It is safe for concurrent use;
// the records of one call are printed together.
type recordWriter struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
	// deaggregate prints the user records of a KPL aggregate instead of
	// the aggregate. A malformed aggregate is printed as it is, as the KCL
	// hands it over.
	deaggregate bool
}

type jsonRecord struct {
	ShardID        string `json:"shardId"`
	SequenceNumber string `json:"sequenceNumber"`
	PartitionKey   string `json:"partitionKey"`
	// SubSequenceNumber is a user record's index in its KPL aggregate.
	SubSequenceNumber *int   `json:"subSequenceNumber,omitempty"`
	Arrival           string `json:"arrival,omitempty"`
	Data              string `json:"data"`
	DataEncoding      string `json:"dataEncoding,omitempty"`
}

func (rw *recordWriter) write(shardID string, recs []types.Record) error {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	bw := bufio.NewWriter(rw.w)
	for _, r := range recs {
		var (
			users []kpl.Record
			agg   bool
		)
		if rw.deaggregate {
			var err error
			if users, agg, err = kpl.Deaggregate(r.Data); err != nil {
				agg = false
			}
		}
		if !agg {
			users = []kpl.Record{{PartitionKey: aws.ToString(r.PartitionKey), Data: r.Data}}
		}
		for i, u := range users {
			if !rw.json {
				bw.Write(u.Data)
				bw.WriteByte('\n')
				continue
			}
			jr := jsonRecord{
				ShardID:        shardID,
				SequenceNumber: aws.ToString(r.SequenceNumber),
				PartitionKey:   u.PartitionKey,
			}
			if agg {
				jr.SubSequenceNumber = &i
			}
			if r.ApproximateArrivalTimestamp != nil {
				jr.Arrival = r.ApproximateArrivalTimestamp.UTC().Format(time.RFC3339Nano)
			}
			if utf8.Valid(u.Data) {
				jr.Data = string(u.Data)
			} else {
				jr.Data = base64.StdEncoding.EncodeToString(u.Data)
				jr.DataEncoding = "base64"
			}
			b, err := json.Marshal(jr)
			if err != nil {
				return err
			}
			bw.Write(b)
			bw.WriteByte('\n')
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing records: %w", err)
	}
	return nil
}
