// Package pipeline loads pipelines.yaml, the file that declares the streams
// to create and the pipelines to run (a source stream, a handler and the
// event-source-mapping settings between them), and runs them on the
// consumer runtime.
package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/runnel-dev/runnel/internal/consumer"
	"github.com/runnel-dev/runnel/internal/yamlpos"
)

// Config is the content of a pipelines file. Load it with Load, which
// applies Defaults and runs Validate.
type Config struct {
	// Streams are created when missing.
	Streams []Stream `yaml:"streams"`
	// Pipelines each consume one stream; at least one is required.
	Pipelines []Pipeline `yaml:"pipelines"`

	file string
	root *yaml.Node
}

// Stream declares a stream to create if it does not exist. An existing
// stream is left as it is.
type Stream struct {
	// Name of the stream; required.
	Name string `yaml:"name"`
	// Shards is the shard count, 1–10000. Default 1.
	Shards int `yaml:"shards"`
	// Retention is how long records are kept, in whole hours from 24h to
	// 8760h (365 days). Default 24h.
	Retention Duration `yaml:"retention"`
}

// Pipeline declares one consumer of one stream.
type Pipeline struct {
	// Name identifies the pipeline in logs and status, and names its
	// consumer application (its leases); required, letters, digits, '.',
	// '_' and '-'.
	Name string `yaml:"name"`
	// Source is the stream read: a name or an ARN; required.
	Source string `yaml:"source"`
	// StartingPosition is TRIM_HORIZON, LATEST or AT_TIMESTAMP, for shards
	// the pipeline has no checkpoint for. Default TRIM_HORIZON.
	StartingPosition string `yaml:"startingPosition"`
	// StartingTimestamp (RFC 3339) is required with AT_TIMESTAMP.
	StartingTimestamp string `yaml:"startingTimestamp"`
	// FanOut names a stream consumer (enhanced fan-out: 1–128 letters,
	// digits, '.', '_' and '-') to read the shards with SubscribeToShard
	// instead of polling GetRecords; it is registered when missing.
	// Default: none, polling.
	FanOut string `yaml:"fanOut"`
	// Handler receives the batches; required.
	Handler Handler `yaml:"handler"`
	// BatchSize is the most records per invocation, 1–10000. Default 100.
	BatchSize int `yaml:"batchSize"`
	// BatchingWindow is how long records are gathered before a smaller
	// batch is sent, 0–300s. Default 0.
	BatchingWindow Duration `yaml:"batchingWindow"`
	// MaxRetries is how often a failed batch is retried before it goes to
	// onFailure and the shard moves on: 0–10000, or -1 for until the
	// records expire. Default -1, as in Lambda.
	MaxRetries *int `yaml:"maxRetries"`
	// MaxRecordAge sends older records to onFailure without invoking the
	// handler: 60s–168h, or -1 / 0 for no limit. Default no limit.
	MaxRecordAge Duration `yaml:"maxRecordAge"`
	// BisectOnError splits a failed batch in two and retries each half.
	// Default false.
	BisectOnError bool `yaml:"bisectOnError"`
	// ReportBatchItemFailures honours batchItemFailures in responses.
	// Default false, as in Lambda.
	ReportBatchItemFailures bool `yaml:"reportBatchItemFailures"`
	// Parallelization is how many batches per shard run at once, 1–10,
	// keeping per-partition-key order. Default 1.
	Parallelization int `yaml:"parallelization"`
	// TumblingWindow groups records into windows of this length with state
	// carried between invocations, 0–900s. Default 0 (off).
	TumblingWindow Duration `yaml:"tumblingWindow"`
	// Timeout bounds one invocation, 1s–900s. Default 60s.
	Timeout Duration `yaml:"timeout"`
	// OnFailure receives the batches given up on. Default: none; they are
	// logged and skipped.
	OnFailure *Destination `yaml:"onFailure"`
	// Leases selects where the pipeline's leases and checkpoints live.
	// Default: a file in the state directory, for workers on one machine.
	Leases *Leases `yaml:"leases"`
}

// Leases keeps a pipeline's leases in a DynamoDB table with the Kinesis
// Client Library's lease-table attributes, so `runnel run` workers on
// several machines share a stream's shards. The table is created
// (on-demand capacity) when missing.
type Leases struct {
	// DynamoDBTable names the lease table; required. The KCL names it
	// after the application, so the pipeline's name is a good choice.
	DynamoDBTable string `yaml:"dynamodbTable"`
	// Endpoint is the DynamoDB endpoint. Default: the AWS SDK's own
	// resolution (AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL, or AWS).
	Endpoint string `yaml:"endpoint"`
	// Region of the table. Default: the AWS configuration's.
	Region string `yaml:"region"`
}

// Handler selects and configures a handler kind.
type Handler struct {
	// Type is command, lambda, http or builtin; required, except that a
	// handler with a runtime is of type lambda.
	Type string `yaml:"type"`

	// Command (type command) is the program and its arguments, as a list
	// or as one string split at spaces; required.
	Command Argv `yaml:"command"`
	// Runtime (type lambda) is nodejs or python (versioned names such as
	// nodejs20.x or python3.12 are accepted); required.
	Runtime string `yaml:"runtime"`
	// Function (type lambda, key handler) is the function as Lambda
	// names it, MODULE.FUNCTION: index.handler, handler.handler;
	// required.
	Function string `yaml:"handler"`
	// Env (types command and lambda) is added to the environment.
	Env map[string]string `yaml:"env"`
	// Dir (types command and lambda) is the working directory, and a
	// lambda function's directory; relative to the pipelines file.
	// Default: the pipelines file's directory.
	Dir string `yaml:"dir"`
	// Processes (types command and lambda) is how many processes run
	// side by side, 1–100. Default: the pipeline's parallelization.
	Processes int `yaml:"processes"`

	// URL (type http) receives each event as a POST; required.
	URL string `yaml:"url"`
	// Headers (type http) are added to every request.
	Headers map[string]string `yaml:"headers"`

	// Name (type builtin) is the built-in processor; required.
	Name string `yaml:"name"`
	// Options (type builtin) configure the built-in processor.
	Options map[string]any `yaml:"options"`
}

// Handler kinds.
const (
	TypeCommand = "command"
	TypeLambda  = "lambda"
	TypeHTTP    = "http"
	TypeBuiltin = "builtin"
)

// Destination is an on-failure destination: exactly one of Stream and
// File.
type Destination struct {
	// Stream receives one record per failed batch.
	Stream string `yaml:"stream"`
	// File receives one JSON line per failed batch; relative to the
	// pipelines file.
	File string `yaml:"file"`
}

// Argv is a command line: a YAML list, or a string split at spaces.
type Argv []string

// UnmarshalYAML implements yaml.Unmarshaler.
func (a *Argv) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*a = strings.Fields(n.Value)
		return nil
	}
	var s []string
	if err := n.Decode(&s); err != nil {
		return err
	}
	*a = s
	return nil
}

// Duration is a YAML duration: a Go duration string such as "500ms",
// "30s" or "24h", or a number of seconds. A value that is neither is kept
// and reported by Validate.
type Duration struct {
	D   time.Duration
	Set bool

	bad string
}

// UnmarshalYAML implements yaml.Unmarshaler. It never fails, so that
// Validate can report a bad duration with its field and line.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	d.Set = true
	if n.Kind != yaml.ScalarNode {
		d.bad = "a " + kindName(n.Kind)
		return nil
	}
	if s, err := strconv.ParseFloat(n.Value, 64); err == nil && n.Tag != "!!str" {
		d.D = time.Duration(s * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		d.bad = strconv.Quote(n.Value)
		return nil
	}
	d.D = v
	return nil
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.AliasNode:
		return "alias"
	}
	return "value"
}

// File is the path the configuration was loaded from.
func (c *Config) File() string { return c.file }

// Dir is the directory relative paths in the configuration are resolved
// against: the pipelines file's.
func (c *Config) Dir() string { return filepath.Dir(c.file) }

// Resolve returns p made absolute against the configuration's directory.
func (c *Config) Resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir(), p)
}

// given reports whether the document sets the field at p. Without a
// document (a Config built in Go) a field is given when it is not zero.
func (c *Config) given(p path, zero bool) bool {
	if c.root == nil {
		return !zero
	}
	return yamlpos.Node(c.root, p) != nil
}

// Defaults fills the fields left out with their defaults. A field set to
// zero in the file is kept, for Validate to report.
func (c *Config) Defaults() {
	for i := range c.Streams {
		s := &c.Streams[i]
		if !c.given(path{"streams", i, "shards"}, s.Shards == 0) {
			s.Shards = 1
		}
		if !s.Retention.Set {
			s.Retention = Duration{D: 24 * time.Hour, Set: true}
		}
	}
	for i := range c.Pipelines {
		p := &c.Pipelines[i]
		if p.StartingPosition == "" {
			p.StartingPosition = string(consumer.TrimHorizon)
		}
		pp := path{"pipelines", i}
		if !c.given(pp.With("batchSize"), p.BatchSize == 0) {
			p.BatchSize = consumer.DefaultBatchSize
		}
		if p.MaxRetries == nil {
			n := consumer.DefaultRetryAttempts
			p.MaxRetries = &n
		}
		if !c.given(pp.With("parallelization"), p.Parallelization == 0) {
			p.Parallelization = 1
		}
		if !p.Timeout.Set {
			p.Timeout = Duration{D: consumer.DefaultInvocationTimeout, Set: true}
		}
		if p.Handler.Type == "" && p.Handler.Runtime != "" {
			p.Handler.Type = TypeLambda
		}
		if (p.Handler.Type == TypeCommand || p.Handler.Type == TypeLambda) && !c.given(pp.With("handler", "processes"), p.Handler.Processes == 0) {
			p.Handler.Processes = p.Parallelization
		}
	}
}

// Error is one problem in a pipelines file.
type Error = yamlpos.Error

// Load reads, decodes, defaults and validates the pipelines file at path.
// builtins are the built-in processors handlers of type builtin may name.
// The error joins one *Error per problem.
func Load(path string, builtins Builtins) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading pipelines file: %w", err)
	}
	return Parse(path, data, builtins)
}

// Parse is Load for data already read; file names it in errors and is the
// base of relative paths.
func Parse(file string, data []byte, builtins Builtins) (*Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlpos.Syntax(file, err)
	}
	if len(doc.Content) == 0 {
		return nil, &Error{File: file, Msg: "file is empty; want streams: and pipelines:"}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, &Error{File: file, Line: root.Line, Column: root.Column, Msg: "want a mapping with streams: and pipelines:"}
	}
	c := &Config{file: file, root: root}
	if err := yamlpos.Decode(file, root, c); err != nil {
		return nil, err
	}
	c.Defaults()
	if err := c.Validate(builtins); err != nil {
		return nil, err
	}
	return c, nil
}

// path is a position in the YAML document: map keys and list indexes.
type path = yamlpos.Path
