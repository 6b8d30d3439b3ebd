// Package table is the table built-in processor: it writes each event of a
// batch as an item of a DynamoDB table (any DynamoDB endpoint), with
// BatchWriteItem in chunks of at most 25 items and 16 MB, retrying only
// the UnprocessedItems. A throttling or unavailable DynamoDB holds the
// batch (see package sink); a record that cannot become an item is
// rejected at once. The writing is package dynamo's.
package table

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/options"
	"github.com/runnel-dev/runnel/internal/pipeline"
	"github.com/runnel-dev/runnel/internal/processor"
	"github.com/runnel-dev/runnel/internal/sink/dynamo"
)

// Config is the table processor's options.
type Config struct {
	// Table is the table name. Required.
	Table string `yaml:"table"`
	// Endpoint is the DynamoDB endpoint URL, e.g. http://127.0.0.1:8000
	// for DynamoDB Local or dynalite. Default: the AWS SDK's own
	// resolution (AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL, or AWS).
	Endpoint string `yaml:"endpoint"`
	// Region is the AWS region. Default: the AWS SDK's (AWS_REGION, the
	// shared config), else us-east-1.
	Region string `yaml:"region"`
	// CreateTable, when set, creates the table when it does not exist.
	CreateTable *dynamo.CreateTable `yaml:"createTable"`
	// Decode says how record data is decoded; default JSON.
	Decode processor.DecodeConfig `yaml:"decode"`
}

// Spec declares the table processor's options.
var Spec = options.New((*Config).Validate,
	options.Field{Name: "table", Required: true, Doc: "The DynamoDB table name."},
	options.Field{Name: "endpoint", DefaultDoc: "the AWS SDK's resolution (AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL, or AWS)",
		Doc: "The DynamoDB endpoint URL, e.g. http://127.0.0.1:8000 for DynamoDB Local or dynalite."},
	options.Field{Name: "region", DefaultDoc: "the AWS SDK's (AWS_REGION, the shared config), else us-east-1", Doc: "The AWS region."},
	options.Field{Name: "createTable", Fields: dynamo.CreateTableFields,
		Doc: "Create the table with this key, on-demand capacity, when it does not exist."},
	processor.DecodeField,
)

// Validate reports every problem of the configuration, named by field.
func (c *Config) Validate() error {
	var errs []error
	if c.Table == "" {
		errs = append(errs, options.Errorf("table", "is required"))
	} else if len(c.Table) < 3 || len(c.Table) > 255 || strings.Trim(c.Table, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != "" {
		errs = append(errs, options.Errorf("table", "%q is not a DynamoDB table name (3-255 of a-z A-Z 0-9 _ . -)", c.Table))
	}
	if c.Endpoint != "" && !strings.HasPrefix(c.Endpoint, "http://") && !strings.HasPrefix(c.Endpoint, "https://") {
		errs = append(errs, options.Errorf("endpoint", "want an http:// or https:// URL, got %q", c.Endpoint))
	}
	if ct := c.CreateTable; ct != nil {
		errs = append(errs, ct.Validate("createTable")...)
	}
	if err := c.Decode.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Builtin is the table processor for pipelines.yaml.
var Builtin = pipeline.Builtin{
	Doc:     "writes each event as an item of a DynamoDB table (BatchWriteItem in chunks of 25, UnprocessedItems retried)",
	Options: Spec,
	New: func(ctx context.Context, env pipeline.BuiltinEnv) (lambda.Handler, error) {
		c, err := Spec.DecodeMap(env.Options)
		if err != nil {
			return nil, err
		}
		api, err := dynamo.NewClient(ctx, c.Endpoint, c.Region)
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
