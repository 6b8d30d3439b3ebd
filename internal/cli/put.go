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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/spf13/cobra"
)

// PutRecords limits that hold on every Kinesis deployment.
const (
	maxBatchRecords = 500
	maxBatchBytes   = 5 << 20 // data plus partition keys of one request
	maxRecordBytes  = 1 << 20 // data plus partition key of one record
	maxKeyLen       = 256
)

// Retrying of records a PutRecords response reports as failed.
const (
	putMaxAttempts = 10
	putBackoffMin  = 100 * time.Millisecond
	putBackoffMax  = 5 * time.Second
	// putLinger is how long a partial batch waits for more input before it
	// is sent, so slow input such as `tail -f` flows without delay.
	putLinger = 100 * time.Millisecond
)

func newPutCommand(e *env) *cobra.Command {
	var key string
	cmd := &cobra.Command{
		Use:   "put STREAM [DATA]",
		Short: "Put one record, or one record per line of standard input",
		Long: `Put DATA as one record and print its shard and sequence number. Without DATA,
or with DATA "-", every line of standard input (without its line ending)
becomes one record; lines are sent in PutRecords batches of at most 500
records and 5 MiB, records the service rejects are retried with backoff, and
a summary is printed to standard error. The exit code is 1 if any record
could not be delivered.

The partition key is --key, or a random key per record.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usagef("%s takes STREAM and optional DATA; got %d argument(s)", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(key) > maxKeyLen {
				return usagef("--key is %d characters; at most %d are allowed", len(key), maxKeyLen)
			}
			ctx := cmd.Context()
			client, err := e.client(ctx)
			if err != nil {
				return err
			}
			p := &putter{api: client, stream: args[0], key: key, logger: e.logger}
			if len(args) == 2 && args[1] != "-" {
				return p.putOne(ctx, e.stdout, []byte(args[1]))
			}
			st, err := p.putLines(ctx, e.stdin)
			fmt.Fprintf(e.stderr, "runnel: sent %d records, %d failed\n", st.sent, st.failed)
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
	api    putRecordsAPI
	stream string
	key    string // "" means a random key per record
	logger *slog.Logger
	// sleep waits between retries; nil means a timer that honours ctx.
	sleep func(ctx context.Context, d time.Duration) error
	// linger is how long a partial batch waits for more input; 0 means
	// putLinger.
	linger time.Duration
}

type putStats struct {
	sent, failed int
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

// putLines sends every line of r as one record. It returns what was sent
// and failed so far even when it returns an error.
func (p *putter) putLines(ctx context.Context, r io.Reader) (putStats, error) {
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

	var (
		st      putStats
		batch   []types.PutRecordsRequestEntry
		size    int
		lineNo  int
		linger  = cmp.Or(p.linger, putLinger)
		lingerT = time.NewTimer(linger)
	)
	defer lingerT.Stop()
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := p.sendBatch(ctx, batch, &st)
		batch, size = nil, 0
		return err
	}
	for {
		select {
		case <-ctx.Done():
			st.failed += len(batch)
			return st, context.Cause(ctx)
		case <-lingerT.C:
			if err := flush(); err != nil {
				return st, err
			}
			continue
		case line, ok := <-lines:
			if !ok {
				if err := flush(); err != nil {
					return st, err
				}
				select {
				case err := <-readErr:
					return st, err
				default:
					return st, nil
				}
			}
			lineNo++
			key := p.partitionKey()
			n := len(line) + len(key)
			if n > maxRecordBytes {
				st.failed++
				st.lastErr = fmt.Sprintf("line %d: record is %d bytes, over the %d-byte limit", lineNo, n, maxRecordBytes)
				p.logger.Warn("record too large", "line", lineNo, "bytes", n)
				continue
			}
			if len(batch) == maxBatchRecords || size+n > maxBatchBytes {
				if err := flush(); err != nil {
					return st, err
				}
			}
			batch = append(batch, types.PutRecordsRequestEntry{Data: line, PartitionKey: aws.String(key)})
			size += n
			lingerT.Reset(linger)
		}
	}
}

// sendBatch puts batch and retries the records the response reports as
// failed, with exponential backoff, up to putMaxAttempts. An error means
// the request itself failed after the SDK's own retries; its records count
// as failed.
func (p *putter) sendBatch(ctx context.Context, batch []types.PutRecordsRequestEntry, st *putStats) error {
	pending := batch
	backoff := putBackoffMin
	for attempt := 1; ; attempt++ {
		out, err := p.api.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(p.stream), Records: pending})
		if err != nil {
			st.failed += len(pending)
			return err
		}
		if len(out.Records) != len(pending) {
			st.failed += len(pending)
			return fmt.Errorf("PutRecords answered %d results for %d records", len(out.Records), len(pending))
		}
		var retry []types.PutRecordsRequestEntry
		for i, r := range out.Records {
			if r.ErrorCode == nil {
				st.sent++
				continue
			}
			retry = append(retry, pending[i])
			st.lastErr = aws.ToString(r.ErrorCode) + ": " + aws.ToString(r.ErrorMessage)
		}
		if len(retry) == 0 {
			return nil
		}
		if attempt == putMaxAttempts {
			st.failed += len(retry)
			p.logger.Warn("giving up on records", "records", len(retry), "attempts", attempt, "last_error", st.lastErr)
			return nil
		}
		p.logger.Debug("retrying failed records", "records", len(retry), "attempt", attempt, "last_error", st.lastErr)
		// Jitter keeps concurrent producers from retrying in step.
		if err := p.wait(ctx, backoff/2+rand.N(backoff/2+1)); err != nil {
			st.failed += len(retry)
			return err
		}
		backoff = min(2*backoff, putBackoffMax)
		pending = retry
	}
}

func (p *putter) wait(ctx context.Context, d time.Duration) error {
	if p.sleep != nil {
		return p.sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
