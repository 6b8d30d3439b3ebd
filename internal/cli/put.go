package cli

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/spf13/cobra"

	"github.com/runnel-dev/runnel/internal/producer"
)

const (
	// putLinger is how long a partial batch waits for more input before it
	// is sent, so slow input such as `tail -f` flows without delay.
	putLinger = 100 * time.Millisecond
	// putMaxAttempts bounds the sends of a record failing for a reason
	// other than throttling.
	putMaxAttempts = 10
)

func newPutCommand(e *env) *cobra.Command {
	var key string
	cmd := &cobra.Command{
		Use:   "put STREAM [DATA]",
		Short: "Put one record, or one record per line of standard input",
		Long: `Put DATA as one record and print its shard and sequence number. Without DATA,
or with DATA "-", every line of standard input (without its line ending)
becomes one record; lines are sent in PutRecords batches of at most 500
records and 5 MiB, one call at a time, records the service rejects are
retried with backoff (throttled records until they are a minute old, others
up to 10 times), and a summary is printed to standard error. The exit code is 1 if any record
could not be delivered.

The partition key is --key, or a random key per record.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usagef("%s takes STREAM and optional DATA; got %d argument(s)", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if n := utf8.RuneCountInString(key); n > producer.MaxPartitionKeyChars {
				return usagef("--key is %d characters; at most %d are allowed", n, producer.MaxPartitionKeyChars)
			}
			ctx := cmd.Context()
			client, err := e.client(ctx)
			if err != nil {
				return err
			}
			p := &putter{api: client, stream: args[0], endpoint: endpointName(client), key: key, logger: e.logger}
			if len(args) == 2 && args[1] != "-" {
				return p.putOne(ctx, e.stdout, []byte(args[1]))
			}
			st, err := p.putLines(ctx, e.stdin)
			fmt.Fprintf(e.stderr, "runnel: sent %d records, %d failed", st.sent, st.failed)
			if st.throttled > 0 {
				fmt.Fprintf(e.stderr, " (the stream throttled %d sends; they were retried)", st.throttled)
			}
			fmt.Fprintln(e.stderr)
			if err != nil {
				return err
			}
			if st.failed > 0 {
				return fmt.Errorf("%d of %d records could not be delivered (last error: %s)", st.failed, st.sent+st.failed, st.lastErr)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "partition key for every record (default: random per record)")
	return cmd
}

// putRecordsAPI is the part of the Kinesis client putter uses.
type putRecordsAPI interface {
	PutRecord(ctx context.Context, in *kinesis.PutRecordInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error)
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
}

// putter sends records to one stream.
type putter struct {
	api      putRecordsAPI
	stream   string
	endpoint string // names the endpoint in errors
	key      string // "" means a random key per record
	logger   *slog.Logger
	// tune, when set, adjusts the producer's configuration (tests shorten
	// its linger and backoff).
	tune func(*producer.Config)
}

type putStats struct {
	sent, failed int
	throttled    int64 // sends the stream throttled, retried
	lastErr      string
}

func (p *putter) partitionKey() string {
	if p.key != "" {
		return p.key
	}
	return strconv.FormatUint(rand.Uint64(), 36)
}

func (p *putter) putOne(ctx context.Context, w io.Writer, data []byte) error {
	out, err := p.api.PutRecord(ctx, &kinesis.PutRecordInput{
		StreamName:   aws.String(p.stream),
		PartitionKey: aws.String(p.partitionKey()),
		Data:         data,
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\t%s\n", aws.ToString(out.ShardId), aws.ToString(out.SequenceNumber))
	return err
}

// putLines sends every line of r as one record through a Producer, one
// PutRecords call at a time so that lines are sent in their order. It
// returns what was sent and failed so far even when it returns an error.
func (p *putter) putLines(ctx context.Context, r io.Reader) (putStats, error) {
	var st putStats
	cfg := producer.Config{
		Stream:      p.stream,
		Endpoint:    p.endpoint,
		Linger:      putLinger,
		MaxInFlight: 1,
		MaxAttempts: putMaxAttempts,
		Logger:      p.logger,
	}
	if p.tune != nil {
		p.tune(&cfg)
	}
	prod, err := producer.New(p.api, cfg)
	if err != nil {
		return st, err
	}
	finish := func(err error) (putStats, error) {
		// Close gives up on what is left once ctx is done.
		ps, cerr := prod.Close(ctx)
		st.sent = int(ps.Delivered)
		st.failed += int(ps.Failed)
		st.throttled = ps.Throttled
		if ps.LastError != "" {
			st.lastErr = ps.LastError
		}
		if ps.Failed > 0 {
			p.logger.Warn("giving up on records", "records", ps.Failed, "last_error", ps.LastError)
		}
		return st, cmp.Or(err, cerr)
	}
	// Cancelling on return releases the reader when sending fails.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lines := make(chan []byte)
	readErr := make(chan error, 1)
	// The reader ends at end of input. When ctx is cancelled while it is
	// blocked reading a terminal, it ends with the process.
	go func() {
		defer close(lines)
		br := bufio.NewReaderSize(r, 64<<10)
		for {
			line, err := br.ReadBytes('\n')
			if len(line) > 0 || err == nil {
				line = bytes.TrimSuffix(line, []byte("\n"))
				line = bytes.TrimSuffix(line, []byte("\r"))
				select {
				case lines <- line:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					readErr <- fmt.Errorf("reading standard input: %w", err)
				}
				return
			}
		}
	}()
	for lineNo := 1; ; lineNo++ {
		var line []byte
		select {
		case <-ctx.Done():
			return finish(context.Cause(ctx))
		case l, ok := <-lines:
			if !ok {
				select {
				case err := <-readErr:
					return finish(err)
				default:
					return finish(nil)
				}
			}
			line = l
		}
		rec := producer.Record{PartitionKey: p.partitionKey(), Data: line}
		if err := producer.Check(rec); err != nil {
			st.failed++
			st.lastErr = fmt.Sprintf("line %d: %v", lineNo, err)
			p.logger.Warn("record not sent", "line", lineNo, "err", err)
			continue
		}
		if err := prod.Write(ctx, rec); err != nil {
			return finish(err)
		}
	}
}
