package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/runnel-dev/runnel/internal/handler"
	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/options"
)

// Builtins are the built-in processors a handler of type builtin may name,
// by name. The caller builds the map (there is no global registry).
type Builtins map[string]Builtin

// Builtin is one built-in processor.
type Builtin struct {
	// Doc says in one line what the processor does.
	Doc string
	// Options declares the processor's options (an *options.Spec); nil
	// takes none.
	Options OptionsSpec
	// New builds the processor for one pipeline. ctx bounds the setup
	// (connecting, creating clients) only, not the processor's lifetime.
	New func(ctx context.Context, env BuiltinEnv) (lambda.Handler, error)
}

// BuiltinEnv is what a built-in processor is built with.
type BuiltinEnv struct {
	Pipeline string
	Options  map[string]any
	Logger   *slog.Logger
	// Stdout is the standard output of runnel run.
	Stdout io.Writer
	// Reject hands one record the processor cannot use (it does not
	// decode, a required field is missing) to the pipeline's on-failure
	// destination with the reason, so the batch can succeed without
	// dropping it silently. Without a destination the record is logged at
	// error level with its payload. An error means it could not be stored
	// and the batch must fail.
	Reject func(ctx context.Context, rec *lambda.KinesisEventRecord, reason error) error
	// StateDir is the runner's state directory (Options.StateDir), where a
	// processor that keeps durable state puts it, under a name that
	// starts with the pipeline's name.
	StateDir string
	// Shards lists the source stream's open shards (nil when unknown), for
	// processors that must hear from every shard, such as event-time
	// windows.
	Shards func(ctx context.Context) ([]string, error)
}

func (b Builtins) names() string {
	if len(b) == 0 {
		return "none"
	}
	names := make([]string, 0, len(b))
	for n := range b {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// OptionsSpec is what the runner needs of an *options.Spec: its fields,
// for the docs, and a check of the options node of a pipelines file.
type OptionsSpec interface {
	Fields() []options.Field
	Check(n *yaml.Node) error
}

// Check checks options given as a map (a configuration built in Go),
// reporting each problem with its option's path.
func (b Builtin) Check(opts map[string]any) error {
	if b.Options == nil {
		if len(opts) > 0 {
			return errNoOptions
		}
		return nil
	}
	if opts == nil {
		return b.Options.Check(nil)
	}
	var n yaml.Node
	if err := n.Encode(opts); err != nil {
		return fmt.Errorf("options: %w", err)
	}
	return b.Options.Check(&n)
}

var errNoOptions = errors.New("takes no options")

// Noop is the built-in processor that accepts every batch and does nothing.
var Noop = Builtin{
	Doc: "accepts every batch and does nothing (moves the checkpoint; a throughput baseline)",
	New: func(context.Context, BuiltinEnv) (lambda.Handler, error) { return handler.Noop, nil },
}

// Log is the built-in processor that prints every record as a JSON line on
// standard output.
var Log = Builtin{
	Doc: "prints every record as a JSON line on standard output",
	New: func(_ context.Context, env BuiltinEnv) (lambda.Handler, error) { return handler.Log(env.Stdout), nil },
}
