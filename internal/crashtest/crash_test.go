// Package crashtest kills `runnel serve` with SIGKILL while puts are in
// flight and checks, after each restart, that every acknowledged record is
// still there exactly once, where and as it was acknowledged.
package crashtest

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/runnel-dev/runnel/internal/kinesisclient"
	"github.com/runnel-dev/runnel/internal/runneltest"
)

const (
	streamName = "crash"
	shardCount = 4
	rounds     = 5
	producers  = 4
	// Each round kills the server once this many records, drawn at random
	// from the range, have been acknowledged in it.
	minAcksBeforeKill = 50
	maxAcksBeforeKill = 1500
	// roundTimeout bounds one round's producing phase.
	roundTimeout = 15 * time.Second
)

// Both fsync policies promise that a crash of runnel loses nothing
// acknowledged: "always" fsyncs the log before answering, "never" writes it
// to the operating system, whose page cache SIGKILL leaves intact.
func TestKillDuringPutsLosesNoAcknowledgedRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the runnel binary")
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "crashtest")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "crashtest")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, fsync := range []string{"always", "never"} {
		t.Run("fsync="+fsync, func(t *testing.T) { killRounds(t, fsync) })
	}
}

func killRounds(t *testing.T, fsync string) {
	dataDir := t.TempDir()
	l := newLedger()
	for round := 1; round <= rounds; round++ {
		srv := runneltest.Serve(t, "--data-dir", dataDir, "--fsync", fsync)
		if round == 1 {
			createStream(t, newClient(t, srv.URL, true))
		} else {
			l.verify(t, newClient(t, srv.URL, true))
		}
		produceAndKill(t, srv, newClient(t, srv.URL, false), l, round)
		if t.Failed() {
			return
		}
	}
	srv := runneltest.Serve(t, "--data-dir", dataDir, "--fsync", fsync)
	l.verify(t, newClient(t, srv.URL, true))
	switch err := srv.StopWith(os.Interrupt, 30*time.Second); {
	case errors.Is(err, runneltest.ErrStillRunning):
		t.Errorf("runnel serve still running 30s after SIGINT\n%s", srv.Stderr())
	case err != nil:
		t.Errorf("runnel serve exited with %v after SIGINT\n%s", err, srv.Stderr())
	}
}

func TestMain(m *testing.M) { runneltest.Main(m) }

// rec is where a record was stored.
type rec struct {
	shard string
	seq   string
}

// ledger is what the producers know about every payload they sent.
type ledger struct {
	mu sync.Mutex
	// acked payloads were acknowledged with a shard and sequence number.
	acked map[string]rec
	// rejected payloads were reported failed in a PutRecords response, so
	// they were not stored.
	rejected map[string]bool
	// unknown payloads were in calls that returned an error (in flight at
	// the kill, or sent to a dead server): they may or may not be stored.
	unknown map[string]bool
	// observed payloads were read back after a restart; they must stay
	// exactly where they were.
	observed map[string]rec
}

func newLedger() *ledger {
	return &ledger{
		acked:    make(map[string]rec),
		rejected: make(map[string]bool),
		unknown:  make(map[string]bool),
		observed: make(map[string]rec),
	}
}

// verify reads every shard from TRIM_HORIZON and checks the stream against
// the ledger.
func (l *ledger) verify(t *testing.T, client *kinesis.Client) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	found := make(map[string]rec)
	for _, shard := range listShards(t, client) {
		var last *big.Int
		for _, r := range readShard(t, client, shard) {
			payload := string(r.Data)
			seq := aws.ToString(r.SequenceNumber)
			n, ok := new(big.Int).SetString(seq, 10)
			if !ok {
				t.Fatalf("shard %s: sequence number %q is not a decimal integer", shard, seq)
			}
			if last != nil && n.Cmp(last) <= 0 {
				t.Errorf("shard %s: sequence %s follows %s", shard, seq, last)
			}
			last = n
			if prev, dup := found[payload]; dup {
				t.Errorf("payload %q read twice: %s/%s and %s/%s", payload, prev.shard, prev.seq, shard, seq)
				continue
			}
			found[payload] = rec{shard: shard, seq: seq}
		}
	}
	for payload, want := range l.acked {
		got, ok := found[payload]
		switch {
		case !ok:
			t.Errorf("acknowledged payload %q (%s/%s) is missing", payload, want.shard, want.seq)
		case got != want:
			t.Errorf("acknowledged payload %q was at %s/%s, read at %s/%s", payload, want.shard, want.seq, got.shard, got.seq)
		}
	}
	for payload, want := range l.observed {
		if got, ok := found[payload]; !ok || got != want {
			t.Errorf("payload %q read at %s/%s after an earlier restart is now at %+v (present %v)", payload, want.shard, want.seq, got, ok)
		}
	}
	unknownPresent := 0
	for payload, got := range found {
		switch {
		case l.rejected[payload]:
			t.Errorf("payload %q was reported failed but is stored at %s/%s", payload, got.shard, got.seq)
		case l.unknown[payload]:
			unknownPresent++
		case l.acked[payload] == (rec{}):
			t.Errorf("payload %q at %s/%s was never sent", payload, got.shard, got.seq)
		}
		l.observed[payload] = got
	}
	t.Logf("verified %d records: %d acknowledged, %d of %d unacknowledged present", len(found), len(l.acked), unknownPresent, len(l.unknown))
}

// produceAndKill runs the producers against srv and kills it with SIGKILL
// once a random number of records has been acknowledged, with puts still in
// flight.
func produceAndKill(t *testing.T, srv *runneltest.Process, client *kinesis.Client, l *ledger, round int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), roundTimeout)
	defer cancel()
	threshold := int64(minAcksBeforeKill + rand.IntN(maxAcksBeforeKill-minAcksBeforeKill+1))
	var acks atomic.Int64
	reached := make(chan struct{})
	var once sync.Once
	stop := make(chan struct{})
	var calls, failedCalls atomic.Int64

	var wg sync.WaitGroup
	for id := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := producer{id: id, round: round, client: client, ledger: l, rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				n, err := p.put(ctx, i%2 == 0)
				calls.Add(1)
				if err != nil {
					failedCalls.Add(1)
				}
				if acks.Add(int64(n)) >= threshold {
					once.Do(func() { close(reached) })
				}
			}
		}()
	}
	select {
	case <-reached:
	case <-ctx.Done():
		t.Errorf("round %d: only %d of %d records acknowledged within %s", round, acks.Load(), threshold, roundTimeout)
	}
	srv.Kill()
	close(stop)
	wg.Wait()
	t.Logf("round %d: killed after %d acknowledged records (threshold %d); %d calls, %d failed", round, acks.Load(), threshold, calls.Load(), failedCalls.Load())
	if failedCalls.Load() == 0 {
		t.Logf("round %d: no put was in flight at the kill", round)
	}
}

type producer struct {
	id, round int
	counter   int
	padding   int // bytes added to every payload
	client    *kinesis.Client
	ledger    *ledger
	rng       *rand.Rand
}

func (p *producer) payload() string {
	p.counter++
	// The padding makes records of varied size without affecting
	// uniqueness, which the prefix guarantees; random, so storage cannot
	// compress it away.
	pad := make([]byte, (p.padding+p.rng.IntN(200))*3/4)
	for i := range pad {
		pad[i] = byte(p.rng.Uint32())
	}
	return fmt.Sprintf("r%d-p%d-%07d-", p.round, p.id, p.counter) + base64.RawStdEncoding.EncodeToString(pad)
}

func (p *producer) key() string { return fmt.Sprintf("k%d", p.rng.Uint64()) }

// put sends one PutRecord (single) or one PutRecords call and records the
// outcome in the ledger. It returns the number of acknowledged records.
func (p *producer) put(ctx context.Context, single bool) (int, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if single {
		payload := p.payload()
		out, err := p.client.PutRecord(cctx, &kinesis.PutRecordInput{
			StreamName:   aws.String(streamName),
			PartitionKey: aws.String(p.key()),
			Data:         []byte(payload),
		})
		p.ledger.mu.Lock()
		defer p.ledger.mu.Unlock()
		if err != nil {
			p.ledger.unknown[payload] = true
			return 0, err
		}
		p.ledger.acked[payload] = rec{shard: aws.ToString(out.ShardId), seq: aws.ToString(out.SequenceNumber)}
		return 1, nil
	}
	n := 1 + p.rng.IntN(50)
	payloads := make([]string, n)
	entries := make([]types.PutRecordsRequestEntry, n)
	for i := range n {
		payloads[i] = p.payload()
		entries[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(p.key()), Data: []byte(payloads[i])}
	}
	out, err := p.client.PutRecords(cctx, &kinesis.PutRecordsInput{StreamName: aws.String(streamName), Records: entries})
	p.ledger.mu.Lock()
	defer p.ledger.mu.Unlock()
	if err != nil {
		for _, pl := range payloads {
			p.ledger.unknown[pl] = true
		}
		return 0, err
	}
	if len(out.Records) != n {
		for _, pl := range payloads {
			p.ledger.unknown[pl] = true
		}
		return 0, fmt.Errorf("PutRecords returned %d results for %d records", len(out.Records), n)
	}
	acked := 0
	for i, r := range out.Records {
		if r.ErrorCode != nil {
			p.ledger.rejected[payloads[i]] = true
			continue
		}
		p.ledger.acked[payloads[i]] = rec{shard: aws.ToString(r.ShardId), seq: aws.ToString(r.SequenceNumber)}
		acked++
	}
	return acked, nil
}

func createStream(t *testing.T, client *kinesis.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(streamName), ShardCount: aws.Int32(shardCount)})
	if err != nil {
		t.Fatalf("CreateStream: %v", err)
	}
	for {
		out, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(streamName)})
		if err != nil {
			t.Fatalf("DescribeStreamSummary: %v", err)
		}
		if out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("stream not ACTIVE: %v", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func listShards(t *testing.T, client *kinesis.Client) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var ids []string
	in := &kinesis.ListShardsInput{StreamName: aws.String(streamName)}
	for range 100 {
		out, err := client.ListShards(ctx, in)
		if err != nil {
			t.Fatalf("ListShards: %v", err)
		}
		for _, s := range out.Shards {
			ids = append(ids, aws.ToString(s.ShardId))
		}
		if out.NextToken == nil {
			if len(ids) != shardCount {
				t.Fatalf("ListShards returned %d shards, want %d", len(ids), shardCount)
			}
			return ids
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	t.Fatal("ListShards: too many pages")
	return nil
}

// readShard returns every record of a shard from TRIM_HORIZON until a
// GetRecords call returns none and reports the shard caught up.
func readShard(t *testing.T, client *kinesis.Client, shard string) []types.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName:        aws.String(streamName),
		ShardId:           aws.String(shard),
		ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		t.Fatalf("GetShardIterator %s: %v", shard, err)
	}
	var recs []types.Record
	iter := it.ShardIterator
	for range 10000 {
		out, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
		if err != nil {
			t.Fatalf("GetRecords %s: %v", shard, err)
		}
		recs = append(recs, out.Records...)
		if out.NextShardIterator == nil || len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
			return recs
		}
		iter = out.NextShardIterator
	}
	t.Fatalf("shard %s not caught up after 10000 GetRecords calls", shard)
	return nil
}

// newClient returns an SDK client for url. Unless retry, it never retries,
// so that a put is sent exactly once and an acknowledgement means exactly
// one record. Reads retry: they are idempotent, and the SDK's transport can
// fail a call on a connection it closed itself (aws-sdk-go-v2 issue 2737).
func newClient(t *testing.T, url string, retry bool) *kinesis.Client {
	t.Helper()
	base, err := kinesisclient.New(t.Context(), kinesisclient.Options{Endpoint: url, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	if retry {
		return base
	}
	return kinesis.New(base.Options(), func(o *kinesis.Options) {
		o.Retryer = aws.NopRetryer{}
	})
}
