package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/runnel-dev/runnel/internal/handler"
	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/pipeline"
)

func newInvokeCommand(e *env) *cobra.Command {
	var configFile, eventFile string
	var data []string
	cmd := &cobra.Command{
		Use:   "invoke PIPELINE",
		Short: "Send one event to a pipeline's handler and print its response and logs",
		Long: `Build the handler of PIPELINE, as runnel run would, send it one event, and
print its response and what the function logged, as Lambda's console test
does. The event is a Kinesis event from --event FILE (JSON, - for standard
input), or else Lambda's sample Kinesis event for the pipeline's stream,
with one record of "Hello, this is a test 123." or one record per --data.

Nothing is read from the stream and nothing is checkpointed; what the
handler itself writes (a table, a file, a counter) is written. Command and
lambda handlers get the Kinesis endpoint and credentials runnel uses, as
under runnel run. Exits 1 when the invocation fails (a function error, a
timeout, a malformed response).`,
		Args: exactArgs("PIPELINE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.invoke(cmd.Context(), configFile, args[0], eventFile, data)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "pipelines.yaml", "the pipelines file that declares PIPELINE")
	f.StringVar(&eventFile, "event", "", "a file holding the Kinesis event to send (JSON; - for standard input); default: Lambda's sample Kinesis event")
	f.StringArrayVar(&data, "data", nil, "the data of a record of the sample event (repeat for more records)")
	return cmd
}

func (e *env) invoke(ctx context.Context, file, name, eventFile string, data []string) error {
	builtins := pipelineBuiltins()
	cfg, err := pipeline.Load(file, builtins)
	if err != nil {
		return err
	}
	p, err := cfg.Pipeline(name)
	if err != nil {
		return usagef("%v", err)
	}
	client, err := e.client(ctx)
	if err != nil {
		return err
	}
	var event *lambda.KinesisEvent
	switch {
	case eventFile != "" && len(data) > 0:
		return usagef("give --event or --data, not both")
	case eventFile != "":
		var raw []byte
		if eventFile == "-" {
			raw, err = io.ReadAll(e.stdin)
		} else {
			raw, err = os.ReadFile(eventFile)
		}
		if err != nil {
			return usagef("reading the event: %v", err)
		}
		if event, err = pipeline.ParseEvent(raw); err != nil {
			return usagef("%s: %v", eventFile, err)
		}
	default:
		records := make([][]byte, len(data))
		for i, d := range data {
			records[i] = []byte(d)
		}
		stream := p.Source
		if n := streamName(p.Source); n != "" {
			stream = n
		}
		event = pipeline.SampleEvent(stream, client.Options().Region, records...)
	}
	logs := newFunctionLogs(e.logger.Handler())
	stateDir, err := os.MkdirTemp("", "runnel-invoke-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stateDir)
	h, closeHandler, err := pipeline.NewHandler(ctx, cfg, name, pipeline.Options{
		Kinesis:     client,
		Builtins:    builtins,
		StateDir:    stateDir,
		Region:      client.Options().Region,
		Logger:      slog.New(logs),
		Stdout:      e.stdout,
		FunctionEnv: pipeline.FunctionEnv(ctx, client.Options(), e.getenv, e.logger),
	})
	if err != nil {
		return err
	}
	ictx, cancel := context.WithTimeout(ctx, p.Timeout.D)
	defer cancel()
	var raw []byte
	var resp *lambda.Response
	var ierr error
	if rh, ok := h.(handler.RawInvoker); ok {
		raw, resp, ierr = rh.InvokeRaw(ictx, event)
	} else {
		resp, ierr = h.Invoke(ictx, event)
		if ierr == nil {
			if resp == nil {
				resp = &lambda.Response{}
			}
			raw, _ = json.Marshal(resp)
		}
	}
	// Closing waits for the processes' output, so the logs are whole.
	cerr := closeHandler(context.WithoutCancel(ctx))

	fmt.Fprintln(e.stdout, "Response:")
	if raw != nil {
		fmt.Fprintln(e.stdout, indentJSON(raw))
	} else {
		fmt.Fprintln(e.stdout, "(none)")
	}
	if resp != nil && len(resp.BatchItemFailures) > 0 && !p.ReportBatchItemFailures {
		fmt.Fprintln(e.stdout, "(batchItemFailures are ignored: the pipeline does not set reportBatchItemFailures)")
	}
	fmt.Fprintln(e.stdout)
	fmt.Fprintln(e.stdout, "Function Logs:")
	fmt.Fprint(e.stdout, logs.String())
	if ierr != nil {
		return fmt.Errorf("invocation failed: %w", ierr)
	}
	return cerr
}

// indentJSON indents raw when it is JSON, else returns it as it is.
func indentJSON(raw []byte) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return string(raw)
	}
	return string(b)
}

// functionLogs is a slog.Handler that keeps the lines a handler process
// printed (the "handler stdout" and "handler stderr" records) as text and
// passes every other record on to next.
type functionLogs struct {
	next slog.Handler

	mu    *sync.Mutex
	lines *strings.Builder
}

func newFunctionLogs(next slog.Handler) *functionLogs {
	return &functionLogs{next: next, mu: &sync.Mutex{}, lines: &strings.Builder{}}
}

func (f *functionLogs) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || f.next.Enabled(ctx, l)
}

func (f *functionLogs) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "handler stdout" || r.Message == "handler stderr" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "line" {
				f.mu.Lock()
				f.lines.WriteString(a.Value.String() + "\n")
				f.mu.Unlock()
				return false
			}
			return true
		})
		return nil
	}
	if !f.next.Enabled(ctx, r.Level) {
		return nil
	}
	return f.next.Handle(ctx, r)
}

func (f *functionLogs) WithAttrs(as []slog.Attr) slog.Handler {
	return &functionLogs{next: f.next.WithAttrs(as), mu: f.mu, lines: f.lines}
}

func (f *functionLogs) WithGroup(name string) slog.Handler {
	return &functionLogs{next: f.next.WithGroup(name), mu: f.mu, lines: f.lines}
}

// String returns the lines kept so far.
func (f *functionLogs) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lines.String()
}

var _ slog.Handler = (*functionLogs)(nil)
