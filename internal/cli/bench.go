package cli

import (
	"cmp"
	"net/http"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/spf13/cobra"

	"github.com/runnel-dev/runnel/internal/bench"
	"github.com/runnel-dev/runnel/internal/kinesisclient"
	"github.com/runnel-dev/runnel/internal/producer"
)

// benchGCPercent is bench's garbage collection target unless GOGC is set.
const benchGCPercent = 400

func newBenchCommand(e *env) *cobra.Command {
	var o bench.Options
	var cpuProfile string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure PutRecords and GetRecords throughput of a Kinesis endpoint",
		Long: `bench creates a fresh stream (or --streams of them), puts records into it from
concurrent clients, reads every shard back from TRIM_HORIZON, checks that every
acknowledged record was read, prints throughput and call latency for both
phases, and deletes the streams (unless --keep).

It targets the endpoint the global --endpoint and --region flags select, real
AWS Kinesis included (--endpoint aws), where it is billed like any other
traffic.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("duration") && !cmd.Flags().Changed("total") {
				o.Total = 0
			}
			if os.Getenv("GOGC") == "" {
				// The client decodes every record it reads through the
				// SDK, and that garbage is most of its work: collecting
				// at 5× the live heap instead of Go's 2× spent far less
				// of the cores the client shares with a local server
				// (a million records read 1.1 to 1.4 times as fast).
				debug.SetGCPercent(benchGCPercent)
			}
			ctx := cmd.Context()
			base, err := e.client(ctx)
			if err != nil {
				return err
			}
			client := kinesis.New(base.Options(), func(ko *kinesis.Options) {
				streams := max(o.Streams, 1)
				ko.HTTPClient = benchHTTPClient(o.Clients*streams + cmp.Or(o.Readers, o.Shards*streams))
				// Retry throttled or failed calls without the client-side
				// retry quota, which a saturating benchmark would exhaust.
				ko.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
					so.RateLimiter = ratelimit.None
				})
			})
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			_, err = bench.Run(ctx, client, o, e.stdout)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Stream, "stream", "", "name of the stream to create; it must not exist (default: a unique runnel-bench-* name)")
	f.IntVar(&o.Streams, "streams", 1, "streams to spread the work over, named STREAM-0, STREAM-1, ... when more than one")
	f.IntVar(&o.Shards, "shards", 4, "shard count of each stream")
	f.IntVar(&o.Clients, "clients", 4, "goroutines making records, and PutRecords calls in flight on each stream")
	f.IntVar(&o.RecordsPerCall, "records-per-call", producer.DefaultMaxBatchRecords, "records per PutRecords call (1..500)")
	f.IntVar(&o.RecordSize, "record-size", 100, "bytes of random data per record, up to 10 MiB less 16; over 1 MiB the streams' MaxRecordSizeInKiB is raised (UpdateMaxRecordSize)")
	f.Int64Var(&o.Total, "total", 100000, "records to put (exclusive with --duration)")
	f.DurationVar(&o.Duration, "duration", 0, "put for this long instead of --total records")
	f.IntVar(&o.Readers, "readers", 0, "shards read concurrently (default: all shards)")
	f.BoolVar(&o.Keep, "keep", false, "keep the stream after the run")
	f.BoolVar(&o.JSON, "json", false, "print the result as JSON")
	f.DurationVar(&o.Timeout, "timeout", 30*time.Minute, "bound on the whole run")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write the client's CPU profile (go tool pprof) to this file")
	return cmd
}

// benchHTTPClient returns runnel's SDK HTTP client (kinesisclient's: a
// request body goes out with its headers, so a quick answer cannot arrive
// while the body is still being written and lose its connection, which
// made the SDK send a PutRecords again that had been stored) keeping
// enough idle connections to the endpoint for conns concurrent callers;
// the default keeps two, and the rest would reconnect on every call.
func benchHTTPClient(conns int) aws.HTTPClient {
	return kinesisclient.HTTPClient(func(t *http.Transport) {
		t.MaxIdleConns = max(100, conns*2)
		t.MaxIdleConnsPerHost = conns * 2
		t.MaxConnsPerHost = 0
	})
}
