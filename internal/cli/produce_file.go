package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/runnel-dev/runnel/internal/producer/source"
)

func newProduceFileCommand(e *env) *cobra.Command {
	var (
		opts     produceOpts
		format   string
		fields   string
		noHeader bool
		key      string
		onError  string
		loop     bool
	)
	cmd := &cobra.Command{
		Use:   "file PATH [STREAM]",
		Short: "Replay the lines of a TSV, CSV or JSON-lines file as events",
		Long: `Send one record per line of PATH ("-" reads standard input). The format comes
from the extension (.csv, .tsv, .jsonl; a .gz file, or gzip input, is
gunzipped) or from --format; standard input defaults to jsonl.

A CSV or TSV row becomes a JSON object whose names are the header row's (or
--fields a,b,c's) and whose values are strings. A JSON line is sent as it is.
The partition key is the value of the --key field, or a random UUID.

A malformed line (wrong column count, bad JSON, missing key) is reported
with its file and line number; --on-error fail (the default) stops there,
--on-error skip goes on.

Each shard's records are stored in file order (--order shard, the default):
a shard never has two calls in flight, while calls to different shards run
at once (--in-flight), so a consumer reads the file back in order shard by
shard. The shard map comes from ListShards; a key without that right sends
one call at a time.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usagef("%s takes PATH and an optional STREAM; got %d argument(s)", cmd.CommandPath(), len(args))
			}
			return opts.streamArg(args[1:])
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := source.FileConfig{Path: args[0], Stdin: e.stdin, NoHeader: noHeader, Key: key, Loop: loop}
			if format != "" {
				f, err := source.ParseFormat(format)
				if err != nil {
					return usagef("--format: %v", err)
				}
				cfg.Format = f
			}
			if fields != "" {
				cfg.Fields = strings.Split(fields, ",")
			}
			switch onError {
			case "fail":
			case "skip":
				cfg.SkipBad = true
				cfg.OnBad = func(le *source.LineError) { fmt.Fprintf(e.stderr, "runnel: skipping %v\n", le) }
			default:
				return usagef("--on-error %q: want skip or fail", onError)
			}
			if loop && args[0] == "-" {
				return usagef("--loop cannot replay standard input")
			}
			src, err := source.OpenFile(cfg)
			if err != nil {
				return err
			}
			defer src.Close()
			r := &produceRun{e: e, opts: &opts}
			return r.run(cmd.Context(), src, func() int64 { return src.Skipped })
		},
	}
	opts.order = "shard"
	opts.addFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&format, "format", "", "csv, tsv or jsonl (default: from the file extension)")
	f.StringVar(&fields, "fields", "", "comma-separated column names for CSV and TSV (a header row is still skipped unless --no-header)")
	f.BoolVar(&noHeader, "no-header", false, "the first row is data, not column names")
	f.StringVar(&key, "key", "", "field whose value is the partition key (default: a random UUID per record)")
	f.StringVar(&onError, "on-error", "fail", "on a malformed line: fail, or skip it (each is reported)")
	f.BoolVar(&loop, "loop", false, "start over at the end of the file, until interrupted")
	return cmd
}
