package archive

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/runnel-dev/runnel/internal/options"
	"github.com/runnel-dev/runnel/internal/processor"
	objectsink "github.com/runnel-dev/runnel/internal/sink/object"
)

// Defaults of Config.
const (
	DefaultBufferSize     = 5 << 20
	DefaultBufferInterval = 60 * time.Second
	// MaxBufferSize bounds BufferSize: one object is built in memory.
	MaxBufferSize = 128 << 20
	// MaxBufferInterval bounds BufferInterval.
	MaxBufferInterval = 24 * time.Hour
)

// Object formats.
const (
	FormatJSONL   = "jsonl"
	FormatParquet = "parquet"
)

// Prefix styles.
const (
	StyleHourly = "hourly" // YYYY/MM/DD/HH/ (the default)
	StyleHive   = "hive"   // dt=YYYY-MM-DD/hour=HH/
)

// Config is the archive processor's options, as written under
// handler.options in pipelines.yaml.
type Config struct {
	// Dir is a local directory objects are written to. Exactly one of Dir
	// and S3 is required.
	Dir string `yaml:"dir"`
	// S3 is a bucket objects are written to.
	S3 *S3Config `yaml:"s3"`
	// SpoolDir holds the records acknowledged to the runtime but not yet
	// in an object, fsynced, one subdirectory per shard. Default:
	// <dir>/.spool/<pipeline> with Dir; <user cache dir>/runnel/spool/<pipeline>
	// with S3.
	SpoolDir string `yaml:"spoolDir"`
	// BufferSize is how many bytes of records an object collects before
	// it is written: a number of bytes or a size such as 5MiB or 64KB,
	// 1 byte–128 MiB. Default 5 MiB.
	BufferSize Size `yaml:"bufferSize"`
	// BufferInterval is how long an object collects records at most before
	// it is written, 1s–24h (0 is taken as the default). Default 60s.
	BufferInterval Duration `yaml:"bufferInterval"`
	// Format is the objects' format: jsonl (the records' data as it
	// was, one per line) or parquet (one row per record, one column per
	// top-level field; see Schema). Default jsonl.
	Format string `yaml:"format"`
	// Compression is, for parquet, the codec of its pages: snappy, zstd,
	// gzip or none (default snappy); for jsonl, gzip (.jsonl.gz), zstd
	// (.jsonl.zst) or none (default none).
	Compression string `yaml:"compression"`
	// Gzip is compression: gzip for jsonl objects. Default false.
	Gzip bool `yaml:"gzip"`
	// Schema declares the columns of parquet objects. Fields of a record
	// that are not declared are not written; a record whose value does
	// not convert to its column's type goes to the error prefix. Default:
	// inferred from the records, widened as later records need (bigint to
	// double, anything mixed to string), never dropping a field.
	Schema []Column `yaml:"schema"`
	// RowGroupSize ends a parquet row group after this many bytes of
	// record data, 1 byte–128 MiB (0 is taken as the default). Default:
	// bufferSize, one row group per object.
	RowGroupSize Size `yaml:"rowGroupSize"`
	// Extension is the object name's extension without the .gz. Default
	// "jsonl", or "parquet" for parquet.
	Extension string `yaml:"extension"`
	// TimeField is the field holding the event time the time prefix comes
	// from; TimeLayout its Go layout (default RFC 3339, "2006-01-02
	// 15:04:05" or epoch seconds). Default: the record's arrival time.
	TimeField  string `yaml:"timeField"`
	TimeLayout string `yaml:"timeLayout"`
	// PrefixStyle is hourly (YYYY/MM/DD/HH/) or hive
	// (dt=YYYY-MM-DD/hour=HH/). Default hourly. Not with Prefix.
	PrefixStyle string `yaml:"prefixStyle"`
	// PartitionBy names an event field whose value becomes a path segment
	// <field>=<value>/ after the time prefix. Default: none. Not with
	// Prefix.
	PartitionBy string `yaml:"partitionBy"`
	// Prefix is where objects go, as Firehose's custom prefix:
	// !{timestamp:yyyy/MM/dd} is the record's time (timeField, else its
	// arrival) in Java's pattern letters (yyyy yy MM dd HH mm ss), and
	// !{partitionKeyFromQuery:NAME} the value of partition key NAME, e.g.
	// "events/country=!{partitionKeyFromQuery:country}/dt=!{timestamp:yyyy-MM-dd}/".
	// Default: as PrefixStyle and PartitionBy say.
	Prefix string `yaml:"prefix"`
	// PartitionKeys computes partition keys per record: name → an
	// expression over the record's fields (expr-lang, as forward's
	// filter), e.g. country: "user.country ?? 'none'". A key that
	// cannot be computed (an error, nil or "") sends the record to the
	// error prefix. Each key is used in Prefix. Default: none.
	PartitionKeys map[string]string `yaml:"partitionKeys"`
	// ErrorPrefix is where records go that cannot be partitioned or
	// converted, one JSON line each with the reason and the data (base64),
	// under !{firehose:error-output-type} (partitioning-failed or
	// format-conversion-failed) and !{timestamp:...} (arrival time).
	// Default "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/".
	ErrorPrefix string `yaml:"errorPrefix"`
	// Decode says how records are decoded to find TimeField and
	// PartitionBy, and to reject records that are not of the format.
	// Objects always hold the records' data as it was. Default json.
	Decode processor.DecodeConfig `yaml:"decode"`
}

// Size is a number of bytes, written as a number or with a unit (B, KB,
// KiB, MB, MiB, GB, GiB).
type Size int64

var sizeRE = regexp.MustCompile(`^\s*([0-9]+)\s*([KMG]i?B|B)?\s*$`)

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	m := sizeRE.FindStringSubmatch(n.Value)
	if n.Kind != yaml.ScalarNode || m == nil {
		return fmt.Errorf("%q is not a size (a number of bytes, or e.g. 5MiB, 512KB)", n.Value)
	}
	v, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not a size: %v", n.Value, err)
	}
	mult := map[string]int64{"": 1, "B": 1, "KB": 1e3, "KiB": 1 << 10, "MB": 1e6, "MiB": 1 << 20, "GB": 1e9, "GiB": 1 << 30}[m[2]]
	if v > (1<<62)/mult {
		return fmt.Errorf("%q is too large", n.Value)
	}
	*s = Size(v * mult)
	return nil
}

// Duration is a time.Duration written as "60s", "5m" or a number of
// seconds.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a duration such as 60s")
	}
	if secs, err := strconv.ParseFloat(n.Value, 64); err == nil {
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 60s or 5m", n.Value)
	}
	*d = Duration(v)
	return nil
}

// Spec declares the archive processor's options.
var Spec = options.New(func(c *Config) error { return c.Validate() },
	options.Field{Name: "dir", Doc: "A local directory objects are written to; exactly one of dir and s3 is required."},
	options.Field{Name: "s3", Fields: objectsink.S3Fields, Doc: "A bucket objects are written to (credentials from the AWS SDK's default chain)."},
	options.Field{Name: "spoolDir", DefaultDoc: "`<dir>/.spool/<pipeline>` with dir; `<user cache dir>/runnel/spool/<pipeline>` with s3",
		Doc: "Holds the records acknowledged but not yet in an object, fsynced, one subdirectory per shard."},
	options.Field{Name: "bufferSize", Type: "size", DefaultDoc: "5MiB",
		Doc: "How many bytes of records an object collects before it is written: a number of bytes or a size such as 5MiB or 64KB, 1 byte–128 MiB."},
	options.Field{Name: "bufferInterval", Type: "duration", DefaultDoc: "60s",
		Doc: "How long an object collects records at most before it is written, 1s–24h, or a number of seconds."},
	options.Field{Name: "format", DefaultDoc: FormatJSONL, Enum: []string{FormatJSONL, FormatParquet},
		Doc: "The objects' format: jsonl holds the records' data as it was, one per line; parquet one row per record, one column per top-level field (see schema)."},
	options.Field{Name: "compression", DefaultDoc: "snappy for parquet, none for jsonl",
		Doc: "For parquet, the codec of its pages: snappy, zstd, gzip or none; for jsonl, gzip (.jsonl.gz), zstd (.jsonl.zst) or none."},
	options.Field{Name: "gzip", Doc: "Compress jsonl objects (.jsonl.gz); the same as compression: gzip."},
	options.Field{Name: "schema", DefaultDoc: "inferred from the records, widened as later records need (bigint to double, anything mixed to string), never dropping a field",
		Doc: "The columns of parquet objects. Fields not declared are not written; a record whose value does not convert to its column's type goes to the error prefix.",
		Fields: []options.Field{
			{Name: "name", Required: true, Doc: "The record's top-level field the column holds."},
			{Name: "type", Required: true, Enum: columnTypes,
				Doc: "A timestamp is read from RFC 3339 text, `2006-01-02 15:04:05` (UTC) or epoch seconds (milliseconds above 1e11) and stored in microseconds, UTC."},
		}},
	options.Field{Name: "rowGroupSize", Type: "size", DefaultDoc: "bufferSize (one row group per object)",
		Doc: "Ends a parquet row group after this many bytes of record data, 1 byte–128 MiB."},
	options.Field{Name: "extension", DefaultDoc: "the format: jsonl or parquet", Doc: "The object name's extension, without the .gz."},
	options.Field{Name: "timeField", DefaultDoc: "the record's arrival time", Doc: "The field holding the event time the time prefix comes from."},
	options.Field{Name: "timeLayout", DefaultDoc: "RFC 3339, `2006-01-02 15:04:05` or epoch seconds", Doc: "The Go layout timeField is parsed with."},
	options.Field{Name: "prefixStyle", DefaultDoc: StyleHourly, Enum: []string{StyleHourly, StyleHive},
		Doc: "The time prefix: hourly is `YYYY/MM/DD/HH/`, hive is `dt=YYYY-MM-DD/hour=HH/`. Not with prefix."},
	options.Field{Name: "partitionBy", DefaultDoc: "none", Doc: "An event field whose value becomes a path segment `<field>=<value>/` after the time prefix. Not with prefix."},
	options.Field{Name: "prefix", DefaultDoc: "as prefixStyle and partitionBy say",
		Doc:     "Where objects go, as Firehose's custom prefix: `!{timestamp:yyyy/MM/dd}` is the record's time (timeField, else its arrival) in Java's pattern letters (yyyy yy MM dd HH mm ss), `!{partitionKeyFromQuery:NAME}` the value of partition key NAME.",
		Example: "events/country=!{partitionKeyFromQuery:country}/dt=!{timestamp:yyyy-MM-dd}/"},
	options.Field{Name: "partitionKeys", DefaultDoc: "none",
		Doc: "Partition keys computed per record: name → an expression over the record's fields (expr-lang, as forward's filter), e.g. `country: \"user.country ?? 'none'\"`. A key that cannot be computed (an error, nil or \"\") sends the record to the error prefix. Each key is used in prefix."},
	options.Field{Name: "errorPrefix", DefaultDoc: "`errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/`",
		Doc: "Where records go that cannot be partitioned or converted, one JSON line each with the reason and the data (base64), under `!{firehose:error-output-type}` (partitioning-failed or format-conversion-failed) and `!{timestamp:...}` (arrival time)."},
	processor.DecodeField,
)

// ParseConfig decodes and validates the options; pipeline names the
// pipeline, for the default spool directory.
func ParseConfig(opts map[string]any, pipeline string) (Config, error) {
	c, err := Spec.DecodeMap(opts)
	if err != nil {
		return c, err
	}
	c.setDefaults(pipeline)
	return c, nil
}

// Check validates the options of a pipelines file (runnel config check).
func Check(opts map[string]any) error {
	_, err := ParseConfig(opts, "check")
	return err
}

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, options.Errorf(field, format, args...))
	}
	switch {
	case c.Dir == "" && c.S3 == nil:
		bad("dir", "one of dir and s3 is required")
	case c.Dir != "" && c.S3 != nil:
		bad("dir", "give dir or s3, not both")
	}
	if c.S3 != nil {
		if c.S3.Bucket == "" {
			bad("s3.bucket", "is required")
		}
		if strings.HasPrefix(c.S3.Prefix, "/") {
			bad("s3.prefix", "%q must not start with /", c.S3.Prefix)
		}
		if c.S3.Endpoint != "" && !strings.HasPrefix(c.S3.Endpoint, "http://") && !strings.HasPrefix(c.S3.Endpoint, "https://") {
			bad("s3.endpoint", "%q is not an http:// or https:// URL", c.S3.Endpoint)
		}
	}
	if c.BufferSize < 0 || c.BufferSize > MaxBufferSize {
		bad("bufferSize", "%d bytes is outside 1 byte–128 MiB", c.BufferSize)
	}
	if d := time.Duration(c.BufferInterval); d != 0 && (d < time.Second || d > MaxBufferInterval) {
		bad("bufferInterval", "%s is outside 1s–24h", d)
	}
	switch c.PrefixStyle {
	case "", StyleHourly, StyleHive:
	default:
		bad("prefixStyle", "must be hourly or hive, got %q", c.PrefixStyle)
	}
	if c.TimeLayout != "" && c.TimeField == "" {
		bad("timeLayout", "needs timeField")
	}
	if strings.ContainsAny(c.Extension, "/.") {
		bad("extension", "%q must be a name without dots or slashes, e.g. jsonl", c.Extension)
	}
	switch c.Format {
	case "", FormatJSONL:
		if c.Compression != "" && c.Compression != CompressionGzip && c.Compression != CompressionZstd && c.Compression != CompressionNone {
			bad("compression", "jsonl objects are compressed with gzip, zstd or none, got %q", c.Compression)
		}
		if c.Gzip && c.Compression == CompressionZstd {
			bad("gzip", "conflicts with compression: zstd")
		}
		if len(c.Schema) > 0 {
			bad("schema", "only parquet objects have a schema (format: parquet)")
		}
	case FormatParquet:
		switch c.Compression {
		case "", CompressionSnappy, CompressionZstd, CompressionGzip, CompressionNone:
		default:
			bad("compression", "must be snappy, zstd, gzip or none, got %q", c.Compression)
		}
		if c.Gzip {
			bad("gzip", "parquet compresses its pages: use compression: gzip")
		}
		if c.Decode.Format == processor.FormatRaw {
			bad("decode.format", "raw records have no fields to make parquet columns of")
		}
	default:
		bad("format", "must be jsonl or parquet, got %q", c.Format)
	}
	seen := make(map[string]bool)
	for i, col := range c.Schema {
		switch {
		case col.Name == "":
			bad(fmt.Sprintf("schema[%d].name", i), "is required")
		case seen[col.Name]:
			bad(fmt.Sprintf("schema[%d].name", i), "%q is declared twice", col.Name)
		}
		seen[col.Name] = true
		if !slices.Contains(columnTypes, col.Type) {
			bad(fmt.Sprintf("schema[%d].type", i), "must be one of %s, got %q", strings.Join(columnTypes, ", "), col.Type)
		}
	}
	if c.RowGroupSize < 0 || c.RowGroupSize > MaxBufferSize {
		bad("rowGroupSize", "%d bytes is outside 1 byte–128 MiB", c.RowGroupSize)
	}
	var dataPrefix prefix
	if c.Prefix != "" {
		var err error
		if dataPrefix, err = parsePrefix(c.Prefix, false); err != nil {
			bad("prefix", "%v", err)
		}
		if c.PrefixStyle != "" || c.PartitionBy != "" {
			bad("prefix", "give prefix, or prefixStyle and partitionBy, not both")
		}
	}
	used := dataPrefix.keys()
	for _, k := range used {
		if _, ok := c.PartitionKeys[k]; !ok {
			bad("prefix", "!{partitionKeyFromQuery:%s}: no partition key %s in partitionKeys", k, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.PartitionKeys)) {
		if !slices.Contains(used, k) {
			bad("partitionKeys."+k, "is not used in prefix (as !{partitionKeyFromQuery:%s})", k)
		}
	}
	if _, err := compileKeys(c.PartitionKeys); err != nil {
		errs = append(errs, err)
	}
	if c.ErrorPrefix != "" {
		if _, err := parsePrefix(c.ErrorPrefix, true); err != nil {
			bad("errorPrefix", "%v", err)
		}
	}
	if c.Decode.Format == processor.FormatRaw && len(c.PartitionKeys) > 0 {
		bad("decode.format", "raw records have no fields for partitionKeys")
	}
	if c.Decode.Format == processor.FormatRaw && (c.TimeField != "" || c.PartitionBy != "") {
		bad("decode.format", "raw records have no fields for timeField or partitionBy")
	}
	if err := c.Decode.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults(pipeline string) {
	if c.BufferSize == 0 {
		c.BufferSize = DefaultBufferSize
	}
	if c.BufferInterval == 0 {
		c.BufferInterval = Duration(DefaultBufferInterval)
	}
	if c.PrefixStyle == "" && c.Prefix == "" {
		c.PrefixStyle = StyleHourly
	}
	if c.Format == "" {
		c.Format = FormatJSONL
	}
	if c.ErrorPrefix == "" {
		c.ErrorPrefix = DefaultErrorPrefix
	}
	if c.Format == FormatJSONL && c.Compression == CompressionGzip {
		c.Gzip = true
	}
	if c.Format == FormatParquet && c.Compression == "" {
		c.Compression = CompressionSnappy
	}
	if c.RowGroupSize == 0 {
		c.RowGroupSize = c.BufferSize
	}
	if c.Extension == "" {
		c.Extension = c.Format
	}
	if c.SpoolDir == "" {
		if c.Dir != "" {
			c.SpoolDir = filepath.Join(c.Dir, ".spool", pipeline)
		} else {
			base, err := os.UserCacheDir()
			if err != nil {
				base = os.TempDir()
			}
			c.SpoolDir = filepath.Join(base, "runnel", "spool", pipeline)
		}
	}
}
