// Package forward is the forward processor: it re-puts a pipeline's
// records into another stream through the producer library, keeping the
// order of each partition key, optionally filtered and reshaped.
//
// Filter and map are expressions of github.com/expr-lang/expr (a small,
// side-effect-free language, compiled once; https://expr-lang.org), with
// the event's fields as variables: `country == "DE" && amount > 10`,
// `{"user": user, "total": price * qty}`. A field missing from an event is
// nil. JSON numbers are int when integral, float64 otherwise.
//
// A batch succeeds only once every record it forwards is acknowledged by
// the target stream, written through the stream sink (package
// internal/sink/stream: each batch is sent by its own producer, drained
// before Invoke returns). Errors sort as sink's do: a
// record Kinesis would refuse whatever the retries (a partition key or
// size over the limits) is poison and goes to the on-failure destination
// at once with the reason; a target that throttles, fails or cannot be
// reached holds the batch, retried until the invocation ends, then given
// back to the runtime as unavailable (sink.ErrUnavailable), which invokes
// it again without using up a retry. The wait shows in the shard's
// status. A batch invoked again may put a record twice (at least once),
// never a later record of a key before an earlier one within a delivery.
package forward

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync/atomic"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"go.yaml.in/yaml/v3"

	"github.com/runnel-dev/runnel/internal/kinesisclient"
	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/options"
	"github.com/runnel-dev/runnel/internal/pipeline"
	"github.com/runnel-dev/runnel/internal/processor"
	"github.com/runnel-dev/runnel/internal/producer"
	"github.com/runnel-dev/runnel/internal/sink/stream"
)

// Builtin is the forward processor as pipelines.yaml names it.
var Builtin = pipeline.Builtin{
	Doc:     "re-puts records into another stream (filtered and reshaped by expressions, optional), keeping per-partition-key order",
	Options: Spec,
	New: func(ctx context.Context, env pipeline.BuiltinEnv) (lambda.Handler, error) {
		cfg, err := ParseConfig(env.Options)
		if err != nil {
			return nil, err
		}
		client, err := kinesisclient.New(ctx, kinesisclient.Options{Endpoint: cfg.Endpoint, Region: cfg.Region})
		if err != nil {
			return nil, err
		}
		return New(cfg, client, Options{Logger: env.Logger, Reject: env.Reject})
	},
}

// Config is the forward processor's options.
type Config struct {
	// Stream is the target stream's name or ARN; required.
	Stream string `yaml:"stream"`
	// Endpoint of the target's Kinesis API: a URL, or "aws" for AWS.
	// Default: AWS_ENDPOINT_URL_KINESIS or AWS_ENDPOINT_URL when set,
	// else http://127.0.0.1:4567, as for every runnel command.
	Endpoint string `yaml:"endpoint"`
	// Region of the target; default from the AWS SDK's sources, else
	// us-east-1.
	Region string `yaml:"region"`
	// Filter is an expression; records for which it is false are not
	// forwarded. Default: forward all.
	Filter string `yaml:"filter"`
	// Map reshapes the record: an expression whose value is put as JSON,
	// or a list of fields kept as they are. Default: the data unchanged.
	Map Map `yaml:"map"`
	// PartitionKey is a template of field references, e.g.
	// "{user}" or "{country}-{city}". Default: the record's own key, or
	// its sequence number for a record put without one (on-demand
	// streams with the AUTO record distribution), which spreads such
	// records over the target's shards as the source did.
	PartitionKey string `yaml:"partitionKey"`
	// Decode says how records are decoded for filter, map and
	// partitionKey. Default json.
	Decode processor.DecodeConfig `yaml:"decode"`
}

// Map is an expression or a list of fields.
type Map struct {
	Expr   string
	Fields []string
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (m *Map) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		m.Expr = n.Value
		return nil
	case yaml.SequenceNode:
		return n.Decode(&m.Fields)
	}
	return errors.New("want an expression or a list of fields")
}

func (m Map) set() bool { return m.Expr != "" || len(m.Fields) > 0 }

var keyRef = regexp.MustCompile(`\{([^{}]*)\}`)

// Spec declares the forward processor's options.
var Spec = options.New(func(c *Config) error {
	_, err := c.compile()
	return err
},
	options.Field{Name: "stream", Required: true, Doc: "The target stream's name or ARN."},
	options.Field{Name: "endpoint", DefaultDoc: "AWS_ENDPOINT_URL_KINESIS or AWS_ENDPOINT_URL when set, else http://127.0.0.1:4567",
		Doc: "The target's Kinesis API: a URL, or `aws` for AWS."},
	options.Field{Name: "region", DefaultDoc: "the AWS SDK's sources, else us-east-1", Doc: "The target's region."},
	options.Field{Name: "filter", DefaultDoc: "forward all",
		Doc: "An expression; records for which it is false are not forwarded."},
	options.Field{Name: "map", Type: "expression or list of strings", DefaultDoc: "the data unchanged",
		Doc: "Reshapes the record: an expression whose value is put as JSON, or a list of fields kept as they are."},
	options.Field{Name: "partitionKey", DefaultDoc: "the record's own key, else its sequence number",
		Doc: "A template of field references, e.g. `{user}` or `{country}-{city}`. A record put without a key (on-demand streams with the AUTO record distribution) is forwarded with its sequence number as the key, which spreads such records over the target's shards."},
	processor.DecodeField,
)

// ParseConfig decodes and validates the options.
func ParseConfig(opts map[string]any) (Config, error) {
	return Spec.DecodeMap(opts)
}

// Check validates the options of a pipelines file (runnel config check).
func Check(opts map[string]any) error {
	_, err := ParseConfig(opts)
	return err
}

// programs are the compiled expressions.
type programs struct {
	filter, mapper *vm.Program
}

// compile validates c and compiles its expressions; every problem is
// reported, each naming its option.
func (c Config) compile() (programs, error) {
	var p programs
	var errs []error
	if c.Stream == "" {
		errs = append(errs, options.Errorf("stream", "the target stream is required"))
	}
	if c.Endpoint != "" && c.Endpoint != kinesisclient.AWS && !strings.HasPrefix(c.Endpoint, "http://") && !strings.HasPrefix(c.Endpoint, "https://") {
		errs = append(errs, options.Errorf("endpoint", "%q is not an http:// or https:// URL, or aws", c.Endpoint))
	}
	opts := []expr.Option{expr.Env(map[string]any{}), expr.AllowUndefinedVariables()}
	if c.Filter != "" {
		prog, err := expr.Compile(c.Filter, append(opts, expr.AsBool())...)
		if err != nil {
			errs = append(errs, options.Errorf("filter", "%v", err))
		}
		p.filter = prog
	}
	if c.Map.Expr != "" {
		prog, err := expr.Compile(c.Map.Expr, opts...)
		if err != nil {
			errs = append(errs, options.Errorf("map", "%v", err))
		}
		p.mapper = prog
	}
	for i, f := range c.Map.Fields {
		if strings.TrimSpace(f) == "" {
			errs = append(errs, options.Errorf(fmt.Sprintf("map[%d]", i), "empty field name"))
		}
	}
	if c.PartitionKey != "" {
		for _, m := range keyRef.FindAllStringSubmatch(c.PartitionKey, -1) {
			if strings.TrimSpace(m[1]) == "" {
				errs = append(errs, options.Errorf("partitionKey", "%q refers to an empty field name", c.PartitionKey))
			}
		}
		if rest := keyRef.ReplaceAllString(c.PartitionKey, ""); strings.ContainsAny(rest, "{}") {
			errs = append(errs, options.Errorf("partitionKey", "unbalanced braces in %q", c.PartitionKey))
		}
	}
	if (c.Filter != "" || c.Map.set() || c.PartitionKey != "") && c.Decode.Format == processor.FormatRaw {
		errs = append(errs, options.Errorf("decode.format", "raw records have no fields for filter, map or partitionKey"))
	}
	if err := c.Decode.Validate(); err != nil {
		errs = append(errs, err)
	}
	return p, errors.Join(errs...)
}

// Options are what a Forwarder is built with besides its Config.
type Options struct {
	Logger *slog.Logger
	// Reject receives records that do not decode, whose filter or map
	// fails, or whose partition key comes out empty. Default: they fail
	// the batch.
	Reject func(ctx context.Context, rec *lambda.KinesisEventRecord, reason error) error
	// Producer adjusts the producer configuration (tests).
	Producer func(*producer.Config)
}

// Stats counts what a Forwarder did.
type Stats struct {
	Forwarded int64 // records acknowledged by the target
	Filtered  int64 // records the filter dropped
	Rejected  int64 // records sent to the on-failure destination
	Throttled int64 // throttled puts, retried
	Retried   int64 // record re-sends
}

// Forwarder is the forward handler. It is safe for concurrent use.
type Forwarder struct {
	cfg    Config
	progs  programs
	out    *stream.Writer
	opts   Options
	decode bool
	stats  struct{ forwarded, filtered, rejected, throttled, retried atomic.Int64 }
}

var _ lambda.Handler = (*Forwarder)(nil)

// New returns a Forwarder putting into cfg.Stream through api.
func New(cfg Config, api producer.PutRecordsAPI, opts Options) (*Forwarder, error) {
	progs, err := cfg.compile()
	if err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Forwarder{
		cfg: cfg, progs: progs, opts: opts,
		out:    &stream.Writer{API: api, Stream: cfg.Stream, Endpoint: cfg.Endpoint, Logger: opts.Logger, Producer: opts.Producer},
		decode: cfg.Filter != "" || cfg.Map.set() || cfg.PartitionKey != "",
	}, nil
}

// Stats returns the counts so far.
func (f *Forwarder) Stats() Stats {
	return Stats{
		Forwarded: f.stats.forwarded.Load(), Filtered: f.stats.filtered.Load(), Rejected: f.stats.rejected.Load(),
		Throttled: f.stats.throttled.Load(), Retried: f.stats.retried.Load(),
	}
}

// Invoke forwards the batch and returns once the target acknowledged every
// forwarded record.
func (f *Forwarder) Invoke(ctx context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
	recs := make([]producer.Record, 0, len(ev.Records))
	src := make([]*lambda.KinesisEventRecord, 0, len(ev.Records))
	for i := range ev.Records {
		rec := &ev.Records[i]
		out, keep, err := f.transform(rec)
		if err != nil {
			if err := f.reject(ctx, rec, err); err != nil {
				return nil, err
			}
			continue
		}
		if !keep {
			f.stats.filtered.Add(1)
			continue
		}
		recs = append(recs, out)
		src = append(src, rec)
	}
	if len(recs) == 0 {
		return nil, nil
	}
	poison, err := f.put(ctx, recs)
	if err != nil {
		return nil, err
	}
	for i, reason := range poison {
		if err := f.reject(ctx, src[i], reason); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// reject hands rec to the on-failure destination, or fails the batch
// when there is none.
func (f *Forwarder) reject(ctx context.Context, rec *lambda.KinesisEventRecord, reason error) error {
	if f.opts.Reject == nil {
		return fmt.Errorf("forward: record %s: %w", rec.EventID, reason)
	}
	if err := f.opts.Reject(ctx, rec, reason); err != nil {
		return err
	}
	f.stats.rejected.Add(1)
	return nil
}

// put delivers recs through the stream sink: it returns the records
// Kinesis would refuse whatever the retries (by index in recs, with the
// reason), once every other record is acknowledged; or an error wrapping
// sink.ErrUnavailable when ctx ended before the target took them all.
func (f *Forwarder) put(ctx context.Context, recs []producer.Record) (map[int]error, error) {
	poison, st, err := f.out.Put(ctx, recs)
	f.stats.forwarded.Add(st.Delivered)
	f.stats.throttled.Add(st.Throttled)
	f.stats.retried.Add(st.Retried)
	if err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	return poison, nil
}

// transform applies decode, filter, map and partitionKey to one record.
// A record without a key of its own gets its sequence number as the key.
func (f *Forwarder) transform(rec *lambda.KinesisEventRecord) (producer.Record, bool, error) {
	out := producer.Record{PartitionKey: rec.Kinesis.PartitionKey, Data: rec.Kinesis.Data}
	if out.PartitionKey == "" {
		// Put without a key (AUTO record distribution): Kinesis needs one.
		out.PartitionKey = rec.Kinesis.SequenceNumber
	}
	if !f.decode {
		return out, true, nil
	}
	ev, err := f.cfg.Decode.Decode(rec)
	if err != nil {
		return out, false, err
	}
	var env map[string]any
	if f.progs.filter != nil || f.progs.mapper != nil {
		env = processor.ExprEnv(ev.Fields)
	}
	if f.progs.filter != nil {
		v, err := expr.Run(f.progs.filter, env)
		if err != nil {
			return out, false, fmt.Errorf("filter: %v", err)
		}
		if keep, _ := v.(bool); !keep {
			return out, false, nil
		}
	}
	switch {
	case f.progs.mapper != nil:
		v, err := expr.Run(f.progs.mapper, env)
		if err != nil {
			return out, false, fmt.Errorf("map: %v", err)
		}
		if s, ok := v.(string); ok {
			out.Data = []byte(s)
		} else if out.Data, err = json.Marshal(v); err != nil {
			return out, false, fmt.Errorf("map: the value is not JSON: %v", err)
		}
	case len(f.cfg.Map.Fields) > 0:
		kept := make(map[string]any, len(f.cfg.Map.Fields))
		for _, name := range f.cfg.Map.Fields {
			if v, ok := ev.Lookup(name); ok {
				kept[name] = v
			}
		}
		if out.Data, err = json.Marshal(kept); err != nil {
			return out, false, fmt.Errorf("map: %v", err)
		}
	}
	if f.cfg.PartitionKey != "" {
		key := keyRef.ReplaceAllStringFunc(f.cfg.PartitionKey, func(m string) string {
			return ev.String(strings.TrimSpace(m[1 : len(m)-1]))
		})
		if key == "" {
			return out, false, fmt.Errorf("partitionKey %q is empty for this record", f.cfg.PartitionKey)
		}
		out.PartitionKey = key
	}
	return out, true, nil
}
