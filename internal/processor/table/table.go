// Package table is the table built-in processor: it writes each event of a
// batch as an item of a DynamoDB table (any DynamoDB endpoint), with
// BatchWriteItem in chunks of at most 25 items and 16 MB, retrying only
// the UnprocessedItems. A throttling or unavailable DynamoDB holds the
// batch (see package sink); a record that cannot become an item is
// rejected at once. The writing is package dynamo's.
package table

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"

	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/pipeline"
	"github.com/runnel-dev/runnel/internal/processor"
	"github.com/runnel-dev/runnel/internal/sink/dynamo"
)

// Config is the table processor's options.
type Config struct {
	// Table is the table name. Required.
	Table string `json:"table"`
	// Endpoint is the DynamoDB endpoint URL, e.g. http://127.0.0.1:8000
	// for DynamoDB Local or dynalite. Default: the AWS SDK's own
	// resolution (AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL, or AWS).
	Endpoint string `json:"endpoint"`
	// Region is the AWS region. Default: the AWS SDK's (AWS_REGION, the
	// shared config), else us-east-1.
	Region string `json:"region"`
	// CreateTable, when set, creates the table when it does not exist.
	CreateTable *dynamo.CreateTable `json:"createTable"`
	// Decode says how record data is decoded; default JSON.
	Decode processor.DecodeConfig `json:"decode"`
}

// Validate reports every problem of the configuration, named by field.
func (c *Config) Validate() error {
	var errs []error
	if c.Table == "" {
		errs = append(errs, errors.New("table: is required"))
	} else if len(c.Table) < 3 || len(c.Table) > 255 || strings.Trim(c.Table, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != "" {
		errs = append(errs, fmt.Errorf("table: %q is not a DynamoDB table name (3-255 of a-z A-Z 0-9 _ . -)", c.Table))
	}
	if c.Endpoint != "" && !strings.HasPrefix(c.Endpoint, "http://") && !strings.HasPrefix(c.Endpoint, "https://") {
		errs = append(errs, fmt.Errorf("endpoint: want an http:// or https:// URL, got %q", c.Endpoint))
	}
	if ct := c.CreateTable; ct != nil {
		errs = append(errs, ct.Validate("createTable")...)
	}
	if err := c.Decode.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// DecodeOptions decodes a builtin's options map into v (a pointer to a
// struct with json tags), reporting unknown options by name.
func DecodeOptions(options map[string]any, v any) error {
	b, err := json.Marshal(options)
	if err != nil {
		return fmt.Errorf("options: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			return fmt.Errorf("%s: want %s, got a JSON %s", te.Field, te.Type, te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return fmt.Errorf("%s: unknown option", strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`))
		}
		return fmt.Errorf("options: %v", err)
	}
	// encoding/json matches names regardless of case; options do not.
	return exactNames(options, reflect.TypeOf(v).Elem(), "")
}

// exactNames reports the first option of m, a value decoded into t,
// whose name differs from its field's json name by case.
func exactNames(m map[string]any, t reflect.Type, prefix string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	fields := map[string]reflect.StructField{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		fields[name] = f
	}
	for k, v := range m {
		f, ok := fields[k]
		if !ok {
			return fmt.Errorf("%s%s: unknown option", prefix, k)
		}
		if sub, ok := v.(map[string]any); ok {
			if err := exactNames(sub, f.Type, prefix+k+"."); err != nil {
				return err
			}
		}
	}
	return nil
}

// Builtin is the table processor for pipelines.yaml.
var Builtin = pipeline.Builtin{
	Doc: "writes each event as an item of a DynamoDB table (BatchWriteItem in chunks of 25, UnprocessedItems retried)",
	Check: func(options map[string]any) error {
		var c Config
		if err := DecodeOptions(options, &c); err != nil {
			return err
		}
		return c.Validate()
	},
	New: func(env pipeline.BuiltinEnv) (lambda.Handler, error) {
		var c Config
		if err := DecodeOptions(env.Options, &c); err != nil {
			return nil, err
		}
		if err := c.Validate(); err != nil {
			return nil, err
		}
		api, err := dynamo.NewClient(context.Background(), c.Endpoint, c.Region)
		if err != nil {
			return nil, err
		}
		return New(api, c, env.Reject, env.Logger)
	},
}

// Processor is the table processor's handler. It is safe for concurrent
// use.
type Processor struct {
	cfg    Config
	w      *dynamo.Writer
	reject func(context.Context, *lambda.KinesisEventRecord, error) error
	log    *slog.Logger

	mu       sync.Mutex
	prepared bool
}

var _ lambda.Handler = (*Processor)(nil)

// New returns the processor. It does no I/O: the table is described (and
// created when configured) on the first batch. reject receives the records
// that cannot become items.
func New(api dynamo.API, c Config, reject func(context.Context, *lambda.KinesisEventRecord, error) error, logger *slog.Logger) (*Processor, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if reject == nil {
		return nil, errors.New("table: a reject function is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	w := dynamo.NewWriter(api, c.Table)
	w.Retry.Logger = logger
	return &Processor{cfg: c, w: w, reject: reject, log: logger}, nil
}

// Writer returns the processor's writer (tests tune its backoff).
func (p *Processor) Writer() *dynamo.Writer { return p.w }

func (p *Processor) prepare(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.prepared {
		return nil
	}
	// DynamoDB unreachable, or the table missing, holds the batch.
	if err := p.w.Open(ctx, p.cfg.CreateTable); err != nil {
		return err
	}
	p.prepared = true
	p.log.Info("table ready", "table", p.cfg.Table, "keys", p.w.Keys())
	return nil
}

// Invoke writes the batch's events as items. Records that do not decode,
// or whose item lacks a key attribute or is too large, are rejected with
// the reason. While DynamoDB throttles or cannot be reached the batch is
// held and retried (an error wrapping sink.ErrUnavailable when ctx ends
// first); any other error means DynamoDB refused the items.
func (p *Processor) Invoke(ctx context.Context, event *lambda.KinesisEvent) (*lambda.Response, error) {
	if err := p.prepare(ctx); err != nil {
		return nil, err
	}
	items := make([]dynamo.Item, 0, len(event.Records))
	for i := range event.Records {
		rec := &event.Records[i]
		item, err := p.item(rec)
		if err != nil {
			if rerr := p.reject(ctx, rec, err); rerr != nil {
				return nil, rerr
			}
			continue
		}
		items = append(items, item)
	}
	if len(items) == 0 {
		return nil, nil
	}
	if _, err := p.w.Put(ctx, items); err != nil {
		return nil, err
	}
	return nil, nil
}

func (p *Processor) item(rec *lambda.KinesisEventRecord) (dynamo.Item, error) {
	ev, err := p.cfg.Decode.Decode(rec)
	if err != nil {
		return nil, err
	}
	if ev.Fields == nil {
		return nil, fmt.Errorf("%w: raw records have no fields to store", dynamo.ErrInvalidItem)
	}
	item, err := dynamo.ItemFromFields(ev.Fields)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", dynamo.ErrInvalidItem, err)
	}
	if err := p.w.Check(item); err != nil {
		return nil, err
	}
	return item, nil
}
