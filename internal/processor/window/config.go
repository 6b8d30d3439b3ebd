package window

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/runnel-dev/runnel/internal/options"
	"github.com/runnel-dev/runnel/internal/processor"
	"github.com/runnel-dev/runnel/internal/processor/table"
	"github.com/runnel-dev/runnel/internal/sink/dynamo"
	"github.com/runnel-dev/runnel/internal/sink/object"
)

// Config is the window processor's options.
type Config struct {
	// Size is the window length, a whole number of seconds ("1m").
	// Required.
	Size string `yaml:"size"`
	// Slide is how far apart sliding windows start; it divides Size.
	// Default Size (tumbling windows). Windows are aligned to the Unix
	// epoch: a tumbling minute window starts at a whole minute.
	Slide string `yaml:"slide"`
	// TimeField is the field holding the event time (see
	// processor.Event.Time for the accepted forms). Default: the
	// record's arrival time.
	TimeField string `yaml:"timeField"`
	// TimeLayout is a Go time layout for TimeField; default: RFC 3339,
	// "2006-01-02 15:04:05" or epoch seconds/milliseconds.
	TimeLayout string `yaml:"timeLayout"`
	// GroupBy names the fields (dotted paths) results are grouped by.
	// Default: none (one result per window).
	GroupBy []string `yaml:"groupBy"`
	// Aggregates names the aggregates each result carries: attribute
	// name → "op(field)", op one of count (no field: "count()"), sum,
	// min, max, avg (of a numeric field) and distinct (the field's
	// distinct values, counted approximately: HyperLogLog++, about 0.8%
	// standard error). Any number, over any fields, e.g.
	// {Distance: sum(Distance), MaxHealthPoints: max(HealthPoints)}.
	// Results hold them in name order. Events lacking a field named here
	// are rejected. Not together with Field or Distinct. Default: the
	// short form (Field, Distinct).
	Aggregates map[string]string `yaml:"aggregates"`
	// Field is the short form of a numeric field's aggregates: results
	// carry count, sum, min, max and avg under those names. Optional;
	// events without a number there are rejected.
	Field string `yaml:"field"`
	// Distinct is the short form of a distinct count: results carry
	// "distinct", the field's distinct values counted approximately.
	// Optional. Without Aggregates, Field and Distinct, results carry
	// only "count".
	Distinct string `yaml:"distinct"`
	// WindowStartName and WindowEndName name the results' window start
	// and end attributes (RFC 3339 times). Default "windowStart" and
	// "windowEnd".
	WindowStartName string `yaml:"windowStartName"`
	WindowEndName   string `yaml:"windowEndName"`
	// Late says what becomes of a late event (one whose windows have
	// closed, see AllowedLateness): "reject" hands it to the pipeline's
	// on-failure destination with the reason; "update" adds it to its
	// windows and emits their results again, updated (an output keyed by
	// window and group overwrites the earlier result; a stream output
	// gets a second record with the same "id"). Default "reject".
	Late string `yaml:"late"`
	// KeepClosed is, with late: update, how long after a window has
	// closed a late event still updates it: the window's partial
	// aggregates are kept that long, and later events are rejected.
	// Default 1h.
	KeepClosed string `yaml:"keepClosed"`
	// AllowedLateness is how far behind the largest event time seen on a
	// shard an event may be and still count: a shard's watermark is its
	// largest event time minus AllowedLateness. Default 0.
	AllowedLateness string `yaml:"allowedLateness"`
	// IdleTimeout is how long a shard may deliver nothing before its
	// watermark starts moving with the wall clock (by the time elapsed
	// since its last batch), so an idle shard does not hold windows open
	// forever. Default 30s.
	IdleTimeout string `yaml:"idleTimeout"`
	// StateDir holds the window state. Default
	// <runner state dir>/<pipeline>.window.
	StateDir string `yaml:"stateDir"`
	// Output is where results go when a window closes. Required.
	Output Output `yaml:"output"`
	// Decode says how record data is decoded; default JSON.
	Decode processor.DecodeConfig `yaml:"decode"`
}

// Output names exactly one destination of window results.
type Output struct {
	// Dir is a local directory: one file of JSON lines per window,
	// named by the window's start and end.
	Dir string `yaml:"dir"`
	// S3 is an S3 bucket (any S3-compatible endpoint): one object of
	// JSON lines per window, keyed as Dir's files under the prefix.
	S3 *object.S3Config `yaml:"s3"`
	// Stream is a Kinesis stream: one record per result, partition key
	// the group values.
	Stream string `yaml:"stream"`
	// Endpoint and Region locate Stream's Kinesis; default as every
	// runnel command (AWS_ENDPOINT_URL, else runnel serve on
	// 127.0.0.1:4567).
	Endpoint string `yaml:"endpoint"`
	Region   string `yaml:"region"`
	// RedisHash is a Redis hash: one field per result.
	RedisHash *RedisHash `yaml:"redisHash"`
	// Table is a DynamoDB table: one item per result.
	Table *TableOutput `yaml:"table"`
}

// RedisHash is a Redis hash output.
type RedisHash struct {
	// Addr is host:port. Required.
	Addr string `yaml:"addr"`
	// Key is the hash's key. Required.
	Key      string `yaml:"key"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	DB       int    `yaml:"db"`
}

// TableOutput is a DynamoDB table output; items carry windowStart,
// windowEnd, the group fields and the aggregates, so the table's key is
// usually a group field and windowStart.
type TableOutput struct {
	Table       string              `yaml:"table"`
	Endpoint    string              `yaml:"endpoint"`
	Region      string              `yaml:"region"`
	CreateTable *dynamo.CreateTable `yaml:"createTable"`
}

// Spec declares the window processor's options.
var Spec = options.New((*Config).Validate,
	options.Field{Name: "size", Required: true, Type: "duration", Example: "1m", Doc: "The window length, a whole number of seconds."},
	options.Field{Name: "slide", Type: "duration", DefaultDoc: "size (tumbling windows)",
		Doc: "How far apart sliding windows start; it divides size. Windows are aligned to the Unix epoch: a tumbling minute window starts at a whole minute."},
	options.Field{Name: "timeField", DefaultDoc: "the record's arrival time", Doc: "The field holding the event time."},
	options.Field{Name: "timeLayout", DefaultDoc: "RFC 3339, `2006-01-02 15:04:05` or epoch seconds/milliseconds", Doc: "The Go layout timeField is parsed with."},
	options.Field{Name: "groupBy", DefaultDoc: "none (one result per window)", Doc: "The fields (dotted paths) results are grouped by."},
	options.Field{Name: "aggregates", DefaultDoc: "the short form (field, distinct)",
		Doc: "The aggregates each result carries, as name: op(field): count() counts events; sum, min, max and avg take a numeric field; distinct counts a field's distinct values approximately (HyperLogLog++, about 0.8% standard error). Events lacking a field named here are rejected. Not with field or distinct."},
	options.Field{Name: "field", Doc: "The short form of a numeric field's aggregates: results carry count, sum, min, max and avg; events without a number there are rejected."},
	options.Field{Name: "distinct", Doc: "The short form of a distinct count: results carry distinct, the field's distinct values counted approximately."},
	options.Field{Name: "windowStartName", DefaultDoc: "windowStart", Doc: "The name of the results' window start attribute (an RFC 3339 time)."},
	options.Field{Name: "windowEndName", DefaultDoc: "windowEnd", Doc: "The name of the results' window end attribute (an RFC 3339 time)."},
	options.Field{Name: "late", DefaultDoc: LateReject,
		Doc: "What becomes of a late event (its windows have closed): `reject` hands it to the on-failure destination; `update` adds it to its windows and emits their results again, updated (a stream output gets a second record with the same id)."},
	options.Field{Name: "keepClosed", Type: "duration", DefaultDoc: "1h",
		Doc: "With late: update, how long after a window closed a late event still updates it; later events are rejected."},
	options.Field{Name: "allowedLateness", Type: "duration", DefaultDoc: "0s",
		Doc: "How far behind the largest event time seen on a shard an event may be and still count."},
	options.Field{Name: "idleTimeout", Type: "duration", DefaultDoc: "30s",
		Doc: "How long a shard may deliver nothing before its watermark moves with the wall clock, so an idle shard does not hold windows open."},
	options.Field{Name: "stateDir", DefaultDoc: "`<state dir>/<pipeline>.window`", Doc: "Holds the window state."},
	options.Field{Name: "output", Required: true, Doc: "Where results go when a window closes: exactly one of dir, s3, stream, redisHash and table.", Fields: []options.Field{
		{Name: "dir", Doc: "A local directory: one file of JSON lines per window, named by the window's start and end."},
		{Name: "s3", Fields: object.S3Fields, Doc: "An S3 bucket (any S3-compatible endpoint): one object of JSON lines per window, keyed as dir's files under the prefix."},
		{Name: "stream", Doc: "A Kinesis stream: one record per result, partition key the group values."},
		{Name: "endpoint", DefaultDoc: "AWS_ENDPOINT_URL, else runnel serve on 127.0.0.1:4567", Doc: "The Kinesis endpoint of stream."},
		{Name: "region", DefaultDoc: "the AWS SDK's sources, else us-east-1", Doc: "The region of stream."},
		{Name: "redisHash", Doc: "A Redis hash: one field per result.", Fields: []options.Field{
			{Name: "addr", Required: true, Example: "127.0.0.1:6379", Doc: "host:port of the Redis server."},
			{Name: "key", Required: true, Doc: "The hash's key."},
			{Name: "username", Doc: "The user to AUTH as."},
			{Name: "password", Doc: "The password to AUTH with."},
			{Name: "db", Doc: "The database number."},
		}},
		{Name: "table", Doc: "A DynamoDB table: one item per result, with the window start and end, the group fields and the aggregates.", Fields: []options.Field{
			{Name: "table", Required: true, Doc: "The DynamoDB table name."},
			{Name: "endpoint", DefaultDoc: "the AWS SDK's resolution", Doc: "The DynamoDB endpoint URL."},
			{Name: "region", DefaultDoc: "the AWS SDK's, else us-east-1", Doc: "The AWS region."},
			{Name: "createTable", Fields: dynamo.CreateTableFields, Doc: "Create the table with this key when it does not exist."},
		}},
	}},
	processor.DecodeField,
)

// Late event choices (Config.Late).
const (
	LateReject = "reject"
	LateUpdate = "update"
)

// shortForm are the aggregate names of the short form (Field and
// Distinct); group fields may not take them.
var shortForm = []string{"count", "sum", "min", "max", "avg", "distinct"}

// aggOps are the aggregate operations.
var aggOps = []string{"count", "sum", "min", "max", "avg", "distinct"}

var aggRE = regexp.MustCompile(`^\s*([a-z]+)\s*(?:\(\s*([^()]*?)\s*\))?\s*$`)

// output is one aggregate of the results: its name, operation and the
// accumulator it reads (-1 for count).
type output struct {
	name, op string
	acc      int
}

// accum is what an aggregate accumulates: a numeric field's sum, min and
// max, or a field's distinct values.
type accum struct {
	field    string
	distinct bool
}

func (a accum) String() string {
	if a.distinct {
		return "distinct:" + a.field
	}
	return "number:" + a.field
}

// parsed is a validated Config in numbers.
type parsed struct {
	size, slide, lateness, idle, keep time.Duration
	update                            bool
	outputs                           []output
	accums                            []accum
	startName, endName                string
}

// accumFor returns the index of the accumulator a, adding it when new.
func (p *parsed) accumFor(a accum) int {
	for i, x := range p.accums {
		if x == a {
			return i
		}
	}
	p.accums = append(p.accums, a)
	return len(p.accums) - 1
}

// parseAggregates fills p.outputs and p.accums from the aggregates or the
// short form, returning the problems.
func (c *Config) parseAggregates(p *parsed) []error {
	var errs []error
	if len(c.Aggregates) == 0 {
		p.outputs = append(p.outputs, output{name: "count", op: "count", acc: -1})
		if c.Field != "" {
			i := p.accumFor(accum{field: c.Field})
			for _, op := range []string{"sum", "min", "max", "avg"} {
				p.outputs = append(p.outputs, output{name: op, op: op, acc: i})
			}
		}
		if c.Distinct != "" {
			p.outputs = append(p.outputs, output{name: "distinct", op: "distinct", acc: p.accumFor(accum{field: c.Distinct, distinct: true})})
		}
		return nil
	}
	if c.Field != "" || c.Distinct != "" {
		errs = append(errs, options.Errorf("aggregates", "not together with field or distinct (write them as aggregates, e.g. sum: sum(v))"))
	}
	for _, name := range slices.Sorted(maps.Keys(c.Aggregates)) {
		spec := c.Aggregates[name]
		m := aggRE.FindStringSubmatch(spec)
		switch {
		case strings.TrimSpace(name) == "":
			errs = append(errs, options.Errorf("aggregates", "an aggregate has an empty name"))
			continue
		case m == nil || !slices.Contains(aggOps, m[1]):
			errs = append(errs, options.Errorf("aggregates."+name, "%q is not op(field) with op one of %s", spec, strings.Join(aggOps, ", ")))
			continue
		case m[1] == "count" && m[2] != "":
			errs = append(errs, options.Errorf("aggregates."+name, "count takes no field (count counts events), got %q", spec))
			continue
		case m[1] != "count" && m[2] == "":
			errs = append(errs, options.Errorf("aggregates."+name, "%s needs a field, e.g. %s(amount)", m[1], m[1]))
			continue
		case name == p.startName || name == p.endName:
			errs = append(errs, options.Errorf("aggregates."+name, "is the name of the window start or end"))
			continue
		}
		o := output{name: name, op: m[1], acc: -1}
		if o.op != "count" {
			o.acc = p.accumFor(accum{field: m[2], distinct: o.op == "distinct"})
		}
		p.outputs = append(p.outputs, o)
	}
	return errs
}

// resultNames are the attribute names results use besides the group
// fields.
func (p *parsed) resultNames(short bool) []string {
	names := []string{p.startName, p.endName}
	if short {
		return append(names, shortForm...)
	}
	for _, o := range p.outputs {
		names = append(names, o.name)
	}
	return names
}

func (c *Config) parse() (parsed, error) {
	var p parsed
	var errs []error
	dur := func(name, s string, def time.Duration, whole bool) time.Duration {
		if s == "" {
			return def
		}
		d, err := time.ParseDuration(s)
		switch {
		case err != nil:
			errs = append(errs, options.Errorf(name, "%q is not a duration such as 30s or 1m", s))
		case d < 0:
			errs = append(errs, options.Errorf(name, "must not be negative"))
		case whole && (d <= 0 || d%time.Second != 0):
			errs = append(errs, options.Errorf(name, "must be a positive whole number of seconds, got %s", s))
		}
		return d
	}
	if c.Size == "" {
		errs = append(errs, options.Errorf("size", "is required, e.g. 1m"))
	}
	p.size = dur("size", c.Size, 0, true)
	p.slide = dur("slide", c.Slide, p.size, true)
	p.lateness = dur("allowedLateness", c.AllowedLateness, 0, false)
	p.idle = dur("idleTimeout", c.IdleTimeout, 30*time.Second, false)
	p.keep = dur("keepClosed", c.KeepClosed, time.Hour, false)
	switch c.Late {
	case "", LateReject:
		if c.KeepClosed != "" {
			errs = append(errs, options.Errorf("keepClosed", "only with late: update"))
		}
		p.keep = 0
	case LateUpdate:
		p.update = true
	default:
		errs = append(errs, options.Errorf("late", "want reject or update, got %q", c.Late))
	}
	p.startName, p.endName = cmp.Or(c.WindowStartName, "windowStart"), cmp.Or(c.WindowEndName, "windowEnd")
	if p.startName == p.endName {
		errs = append(errs, options.Errorf("windowEndName", "%q is also the window start's name", p.endName))
	}
	errs = append(errs, c.parseAggregates(&p)...)
	reserved := p.resultNames(len(c.Aggregates) == 0)
	if c.IdleTimeout != "" && p.idle == 0 {
		errs = append(errs, options.Errorf("idleTimeout", "must be positive"))
	}
	if p.size > 0 && p.slide > 0 {
		if p.slide > p.size || p.size%p.slide != 0 {
			errs = append(errs, options.Errorf("slide", "%s must divide size %s", p.slide, p.size))
		} else if p.size/p.slide > 1000 {
			errs = append(errs, options.Errorf("slide", "%s puts each event in more than 1000 windows of %s", p.slide, p.size))
		}
	}
	if c.TimeLayout != "" && c.TimeField == "" {
		errs = append(errs, options.Errorf("timeLayout", "given without a timeField"))
	}
	seen := map[string]bool{}
	for i, g := range c.GroupBy {
		switch {
		case g == "":
			errs = append(errs, options.Errorf(fmt.Sprintf("groupBy[%d]", i), "is empty"))
		case seen[g]:
			errs = append(errs, options.Errorf(fmt.Sprintf("groupBy[%d]", i), "%q is named twice", g))
		case slices.Contains(reserved, g):
			errs = append(errs, options.Errorf(fmt.Sprintf("groupBy[%d]", i), "%q is the name of a result field (%s)", g, strings.Join(reserved, ", ")))
		}
		seen[g] = true
	}
	o := c.Output
	n := 0
	for _, set := range []bool{o.Dir != "", o.S3 != nil, o.Stream != "", o.RedisHash != nil, o.Table != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		errs = append(errs, options.Errorf("output", "name exactly one of dir, s3, stream, redisHash, table"))
	}
	if (o.Endpoint != "" || o.Region != "") && o.Stream == "" {
		errs = append(errs, options.Errorf("output.endpoint", "with output.region: only a stream output takes them"))
	}
	if o.Endpoint != "" && !strings.HasPrefix(o.Endpoint, "http://") && !strings.HasPrefix(o.Endpoint, "https://") {
		errs = append(errs, options.Errorf("output.endpoint", "want an http:// or https:// URL, got %q", o.Endpoint))
	}
	if o.S3 != nil && o.S3.Bucket == "" {
		errs = append(errs, options.Errorf("output.s3.bucket", "is required"))
	}
	if o.S3 != nil && o.S3.Endpoint != "" && !strings.HasPrefix(o.S3.Endpoint, "http://") && !strings.HasPrefix(o.S3.Endpoint, "https://") {
		errs = append(errs, options.Errorf("output.s3.endpoint", "want an http:// or https:// URL, got %q", o.S3.Endpoint))
	}
	if r := o.RedisHash; r != nil {
		if r.Addr == "" {
			errs = append(errs, options.Errorf("output.redisHash.addr", "is required, e.g. 127.0.0.1:6379"))
		}
		if r.Key == "" {
			errs = append(errs, options.Errorf("output.redisHash.key", "is required"))
		}
		if r.DB < 0 {
			errs = append(errs, options.Errorf("output.redisHash.db", "must not be negative"))
		}
	}
	if t := o.Table; t != nil {
		tc := table.Config{Table: t.Table, Endpoint: t.Endpoint, Region: t.Region, CreateTable: t.CreateTable}
		if err := tc.Validate(); err != nil {
			for _, e := range options.Unjoin(err) {
				var oe *options.Error
				if errors.As(e, &oe) {
					errs = append(errs, options.Errorf("output.table."+oe.Path, "%s", oe.Msg))
				} else {
					errs = append(errs, options.Errorf("output.table", "%v", e))
				}
			}
		}
	}
	if err := c.Decode.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Decode.Format == processor.FormatRaw {
		errs = append(errs, options.Errorf("decode.format", "raw records have no fields to window"))
	}
	return p, errors.Join(errs...)
}

// Validate reports every problem of the configuration, named by field.
func (c *Config) Validate() error {
	_, err := c.parse()
	return err
}
