package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/runnel-dev/runnel/internal/consumer"
	"github.com/runnel-dev/runnel/internal/producer"
)

// maxFailureLine bounds one line of an on-failure file: a batch of up to
// 10,000 records of up to 1 MiB each, base64-encoded, would be larger,
// but runnel keeps an invocation's event under 6 MiB.
const maxFailureLine = 64 << 20

func newReplayCommand(e *env) *cobra.Command {
	var stream string
	cmd := &cobra.Command{
		Use:   "replay FILE",
		Short: "Put the records of an on-failure file back into a stream",
		Long: `Read FILE, an on-failure file written by a pipeline (onFailure: {file: ...};
"-" reads standard input), and put every record it holds back into the
stream it came from (named by each entry's streamArn), or into --stream, with
the partition key it had. Records keep their order per partition key. They
are sent in PutRecords batches through the same producer as "runnel
produce": records the service throttles or rejects are retried, and those
that still cannot be put are listed on standard error.

A summary goes to standard error. The exit code is 1 when any record could
not be put or any line of FILE is not an on-failure entry with records.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("%s takes one FILE; got %d argument(s)", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var in io.Reader = e.stdin
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			return (&replayer{e: e, stream: stream}).run(cmd.Context(), in)
		},
	}
	cmd.Flags().StringVar(&stream, "stream", "", "put every record into this stream (default: the stream each record came from)")
	return cmd
}

// replayer puts the records of an on-failure file back.
type replayer struct {
	e      *env
	stream string // "" means each entry's source stream

	mu       sync.Mutex
	failed   int
	lastErr  string
	problems int // lines that are not entries with records
}

func (r *replayer) run(ctx context.Context, in io.Reader) error {
	client, err := r.e.client(ctx)
	if err != nil {
		return err
	}
	producers := map[string]*producer.Producer{}
	closeAll := func() (producer.Stats, error) {
		var total producer.Stats
		var errs []error
		for _, name := range slices.Sorted(maps.Keys(producers)) {
			st, err := producers[name].Close(ctx)
			errs = append(errs, err)
			total.Delivered += st.Delivered
			total.Failed += st.Failed
		}
		return total, errors.Join(errs...)
	}
	writer := func(stream string) (*producer.Producer, error) {
		if p, ok := producers[stream]; ok {
			return p, nil
		}
		p, err := producer.New(client, producer.Config{
			Stream:       stream,
			OrderedByKey: true,
			Logger:       r.e.logger,
			OnFailure: func(rec producer.Record, err error) {
				r.mu.Lock()
				defer r.mu.Unlock()
				r.failed++
				r.lastErr = err.Error()
				fmt.Fprintf(r.e.stderr, "runnel: not put into %s: partition key %q, %d bytes: %v\n", stream, rec.PartitionKey, len(rec.Data), err)
			},
		})
		if err != nil {
			return nil, err
		}
		producers[stream] = p
		return p, nil
	}

	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), maxFailureLine)
	entries, queued := 0, 0
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		recs, err := failureRecords([]byte(text), r.stream)
		if err != nil {
			r.problem("line %d: %v", line, err)
			continue
		}
		entries++
		for _, rec := range recs {
			p, err := writer(rec.stream)
			if err != nil {
				_, _ = closeAll()
				return err
			}
			if err := p.Write(ctx, rec.Record); err != nil {
				_, _ = closeAll()
				return err
			}
			queued++
		}
	}
	if err := sc.Err(); err != nil {
		_, _ = closeAll()
		return fmt.Errorf("reading the on-failure file: %w", err)
	}
	st, closeErr := closeAll()
	fmt.Fprintf(r.e.stderr, "runnel: %d records of %d on-failure entries: %d put, %d not put; %d lines skipped\n",
		queued, entries, st.Delivered, st.Failed, r.problems)
	switch {
	case closeErr != nil:
		return closeErr
	case st.Failed > 0:
		return fmt.Errorf("%d of %d records could not be put (last error: %s)", st.Failed, queued, r.lastErr)
	case r.problems > 0:
		return fmt.Errorf("%d lines of the file could not be replayed", r.problems)
	}
	return nil
}

// replayRecord is a record of an on-failure entry and the stream it goes
// to.
type replayRecord struct {
	producer.Record
	stream string
}

// failureRecords decodes one line of an on-failure file and returns its
// records, each bound for stream or, when stream is "", for the stream it
// came from.
func failureRecords(line []byte, stream string) ([]replayRecord, error) {
	var f consumer.Failure
	if err := json.Unmarshal(line, &f); err != nil {
		return nil, fmt.Errorf("not an on-failure entry: %v", err)
	}
	if f.Payload == nil || len(f.Payload.Records) == 0 {
		b := f.KinesisBatchInfo
		return nil, fmt.Errorf("holds no records, only their position (shard %s, sequence numbers %s to %s): read them from the stream while it retains them",
			b.ShardID, b.StartSequenceNumber, b.EndSequenceNumber)
	}
	out := make([]replayRecord, 0, len(f.Payload.Records))
	for i, rec := range f.Payload.Records {
		to := stream
		if to == "" {
			if to = streamName(rec.EventSourceARN); to == "" {
				to = streamName(f.KinesisBatchInfo.StreamARN)
			}
		}
		if to == "" {
			return nil, fmt.Errorf("record %d: no source stream in the entry; name one with --stream", i+1)
		}
		out = append(out, replayRecord{Record: producer.Record{PartitionKey: rec.Kinesis.PartitionKey, Data: rec.Kinesis.Data}, stream: to})
	}
	return out, nil
}

func (r *replayer) problem(format string, args ...any) {
	r.problems++
	fmt.Fprintf(r.e.stderr, "runnel: "+format+"\n", args...)
}

// streamName returns the name in a stream ARN
// (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME, or a stream consumer's ARN
// under it), "" when there is none.
func streamName(arn string) string {
	_, name, ok := strings.Cut(arn, ":stream/")
	if !ok || !strings.HasPrefix(arn, "arn:") {
		return ""
	}
	name, _, _ = strings.Cut(name, "/")
	return name
}
