package window

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/runnel-dev/runnel/internal/processor"
	"github.com/runnel-dev/runnel/internal/processor/table"
	"github.com/runnel-dev/runnel/internal/sink/dynamo"
	"github.com/runnel-dev/runnel/internal/sink/object"
)

// Config is the window processor's options.
type Config struct {
	// Size is the window length, a whole number of seconds ("1m").
	// Required.
	Size string `json:"size"`
	// Slide is how far apart sliding windows start; it divides Size.
	// Default Size (tumbling windows). Windows are aligned to the Unix
	// epoch: a tumbling minute window starts at a whole minute.
	Slide string `json:"slide"`
	// TimeField is the field holding the event time (see
	// processor.Event.Time for the accepted forms). Default: the
	// record's arrival time.
	TimeField string `json:"timeField"`
	// TimeLayout is a Go time layout for TimeField; default: RFC 3339,
	// "2006-01-02 15:04:05" or epoch seconds/milliseconds.
	TimeLayout string `json:"timeLayout"`
	// GroupBy names the fields (dotted paths) results are grouped by.
	// Default: none (one result per window).
	GroupBy []string `json:"groupBy"`
	// Field is a numeric field whose sum, min, max and avg are computed.
	// Optional; events without a number there are rejected.
	Field string `json:"field"`
	// Distinct is a field whose distinct values are counted
	// approximately (HyperLogLog++, about 0.8% standard error).
	// Optional.
	Distinct string `json:"distinct"`
	// AllowedLateness is how far behind the largest event time seen on a
	// shard an event may be and still count: a shard's watermark is its
	// largest event time minus AllowedLateness. Default 0.
	AllowedLateness string `json:"allowedLateness"`
	// IdleTimeout is how long a shard may deliver nothing before its
	// watermark starts moving with the wall clock (by the time elapsed
	// since its last batch), so an idle shard does not hold windows open
	// forever. Default 30s.
	IdleTimeout string `json:"idleTimeout"`
	// StateDir holds the window state. Default
	// <runner state dir>/<pipeline>.window.
	StateDir string `json:"stateDir"`
	// Output is where results go when a window closes. Required.
	Output Output `json:"output"`
	// Decode says how record data is decoded; default JSON.
	Decode processor.DecodeConfig `json:"decode"`
}

// Output names exactly one destination of window results.
type Output struct {
	// Dir is a local directory: one file of JSON lines per window,
	// named by the window's start and end.
	Dir string `json:"dir"`
	// S3 is an S3 bucket (any S3-compatible endpoint): one object of
	// JSON lines per window, keyed as Dir's files under the prefix.
	S3 *object.S3Config `json:"s3"`
	// Stream is a Kinesis stream: one record per result, partition key
	// the group values.
	Stream string `json:"stream"`
	// Endpoint and Region locate Stream's Kinesis; default as every
	// runnel command (AWS_ENDPOINT_URL, else runnel serve on
	// 127.0.0.1:4567).
	Endpoint string `json:"endpoint"`
	Region   string `json:"region"`
	// RedisHash is a Redis hash: one field per result.
	RedisHash *RedisHash `json:"redisHash"`
	// Table is a DynamoDB table: one item per result.
	Table *TableOutput `json:"table"`
}

// RedisHash is a Redis hash output.
type RedisHash struct {
	// Addr is host:port. Required.
	Addr string `json:"addr"`
	// Key is the hash's key. Required.
	Key      string `json:"key"`
	Username string `json:"username"`
	Password string `json:"password"`
	DB       int    `json:"db"`
}

// TableOutput is a DynamoDB table output; items carry windowStart,
// windowEnd, the group fields and the aggregates, so the table's key is
// usually a group field and windowStart.
type TableOutput struct {
	Table       string              `json:"table"`
	Endpoint    string              `json:"endpoint"`
	Region      string              `json:"region"`
	CreateTable *dynamo.CreateTable `json:"createTable"`
}

// Aggregate names used in results; group fields may not take them.
var reserved = []string{"windowStart", "windowEnd", "count", "sum", "min", "max", "avg", "distinct"}

// parsed is a validated Config in numbers.
type parsed struct {
	size, slide, lateness, idle time.Duration
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
			errs = append(errs, fmt.Errorf("%s: %q is not a duration such as 30s or 1m", name, s))
		case d < 0:
			errs = append(errs, fmt.Errorf("%s: must not be negative", name))
		case whole && (d <= 0 || d%time.Second != 0):
			errs = append(errs, fmt.Errorf("%s: must be a positive whole number of seconds, got %s", name, s))
		}
		return d
	}
	if c.Size == "" {
		errs = append(errs, errors.New("size: is required, e.g. 1m"))
	}
	p.size = dur("size", c.Size, 0, true)
	p.slide = dur("slide", c.Slide, p.size, true)
	p.lateness = dur("allowedLateness", c.AllowedLateness, 0, false)
	p.idle = dur("idleTimeout", c.IdleTimeout, 30*time.Second, false)
	if c.IdleTimeout != "" && p.idle == 0 {
		errs = append(errs, errors.New("idleTimeout: must be positive"))
	}
	if p.size > 0 && p.slide > 0 {
		if p.slide > p.size || p.size%p.slide != 0 {
			errs = append(errs, fmt.Errorf("slide: %s must divide size %s", p.slide, p.size))
		} else if p.size/p.slide > 1000 {
			errs = append(errs, fmt.Errorf("slide: %s puts each event in more than 1000 windows of %s", p.slide, p.size))
		}
	}
	if c.TimeLayout != "" && c.TimeField == "" {
		errs = append(errs, errors.New("timeLayout: given without a timeField"))
	}
	seen := map[string]bool{}
	for i, g := range c.GroupBy {
		switch {
		case g == "":
			errs = append(errs, fmt.Errorf("groupBy[%d]: is empty", i))
		case seen[g]:
			errs = append(errs, fmt.Errorf("groupBy[%d]: %q is named twice", i, g))
		case contains(reserved, g):
			errs = append(errs, fmt.Errorf("groupBy[%d]: %q is the name of a result field (%s)", i, g, strings.Join(reserved, ", ")))
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
		errs = append(errs, errors.New("output: name exactly one of dir, s3, stream, redisHash, table"))
	}
	if (o.Endpoint != "" || o.Region != "") && o.Stream == "" {
		errs = append(errs, errors.New("output.endpoint, output.region: only a stream output takes them"))
	}
	if o.Endpoint != "" && !strings.HasPrefix(o.Endpoint, "http://") && !strings.HasPrefix(o.Endpoint, "https://") {
		errs = append(errs, fmt.Errorf("output.endpoint: want an http:// or https:// URL, got %q", o.Endpoint))
	}
	if o.S3 != nil && o.S3.Bucket == "" {
		errs = append(errs, errors.New("output.s3.bucket: is required"))
	}
	if o.S3 != nil && o.S3.Endpoint != "" && !strings.HasPrefix(o.S3.Endpoint, "http://") && !strings.HasPrefix(o.S3.Endpoint, "https://") {
		errs = append(errs, fmt.Errorf("output.s3.endpoint: want an http:// or https:// URL, got %q", o.S3.Endpoint))
	}
	if r := o.RedisHash; r != nil {
		if r.Addr == "" {
			errs = append(errs, errors.New("output.redisHash.addr: is required, e.g. 127.0.0.1:6379"))
		}
		if r.Key == "" {
			errs = append(errs, errors.New("output.redisHash.key: is required"))
		}
		if r.DB < 0 {
			errs = append(errs, errors.New("output.redisHash.db: must not be negative"))
		}
	}
	if t := o.Table; t != nil {
		tc := table.Config{Table: t.Table, Endpoint: t.Endpoint, Region: t.Region, CreateTable: t.CreateTable}
		if err := tc.Validate(); err != nil {
			for _, e := range unjoin(err) {
				errs = append(errs, fmt.Errorf("output.table.%v", e))
			}
		}
	}
	if err := c.Decode.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Decode.Format == processor.FormatRaw {
		errs = append(errs, errors.New("decode.format: raw records have no fields to window"))
	}
	return p, errors.Join(errs...)
}

// Validate reports every problem of the configuration, named by field.
func (c *Config) Validate() error {
	_, err := c.parse()
	return err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
