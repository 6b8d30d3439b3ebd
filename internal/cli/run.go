package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/runnel-dev/runnel/internal/counterstore"
	"github.com/runnel-dev/runnel/internal/options"
	"github.com/runnel-dev/runnel/internal/pipeline"
	"github.com/runnel-dev/runnel/internal/processor/archive"
	"github.com/runnel-dev/runnel/internal/processor/count"
	"github.com/runnel-dev/runnel/internal/processor/forward"
	"github.com/runnel-dev/runnel/internal/processor/table"
	"github.com/runnel-dev/runnel/internal/processor/window"
)

// runEnv maps each run flag to its environment variable.
var runEnv = map[string]string{
	"state-dir":       "RUNNEL_STATE_DIR",
	"status-listen":   "RUNNEL_STATUS_LISTEN",
	"report-interval": "RUNNEL_REPORT_INTERVAL",
}

// pipelineBuiltins are the built-in processors a pipelines file may name.
func pipelineBuiltins() pipeline.Builtins {
	return pipeline.Builtins{
		"noop":    pipeline.Noop,
		"archive": archive.Builtin,
		"count":   count.NewBuiltin(&counterstore.Shared{}),
		"forward": forward.Builtin,
		"log":     pipeline.Log,
		"window":  window.Builtin,
		"table":   table.Builtin,
	}
}

func newRunCommand(e *env) *cobra.Command {
	var stateDir, statusListen string
	var reportEvery time.Duration
	cmd := &cobra.Command{
		Use:   "run PIPELINES.yaml",
		Short: "Run the pipelines of a pipelines file against a Kinesis endpoint",
		Long: `Create the streams PIPELINES.yaml declares (when missing), then run every
pipeline it declares: read the source stream's shards, invoke the handler
(a command, an HTTP endpoint or a built-in processor) with batches of
records in the event AWS Lambda sends for Kinesis, retry what failed, send
what keeps failing to the on-failure destination, and checkpoint.

Checkpoints and leases are kept in --state-dir (an embedded store); a
restarted run resumes from them, at once even after kill -9: only one
process may use a state directory at a time, so the leases a previous run
left are released at start instead of waited out; runs with different state directories are separate
applications that each read every record. To share a stream's shards
among several runs (on one machine or many), give the pipeline a DynamoDB
lease table (leases: {dynamodbTable: NAME, endpoint: URL}).

Status (per pipeline and shard: checkpoint, lag, invocations, errors, last
error) is printed on SIGUSR1 and at exit, and served as JSON on
--status-listen when set (GET /status). Against a runnel server (any
--endpoint but aws) the status is also reported to the server every
--report-interval (POST /api/pipelines/report, signed like the Kinesis
calls), so its dashboard shows these pipelines beside its own; it marks
them stale when three reports are missed and drops them when this process
stops. SIGINT or SIGTERM stop gracefully: batches in flight finish and are
checkpointed.

Validate a file without running it with 'runnel config check'.`,
		Args: exactArgs("PIPELINES.yaml"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := applyEnv(cmd.Flags(), e.getenv, runEnv); err != nil {
				return err
			}
			if reportEvery < 0 {
				return usagef("--report-interval %v: want 0 (off) or more", reportEvery)
			}
			return e.run(cmd.Context(), args[0], stateDir, statusListen, reportEvery)
		},
	}
	f := cmd.Flags()
	f.StringVar(&stateDir, "state-dir", "", "directory for leases and checkpoints (default .runnel beside the pipelines file) [$RUNNEL_STATE_DIR]")
	f.StringVar(&statusListen, "status-listen", "", "address to serve status JSON on, e.g. 127.0.0.1:7070; port 0 picks a free port (default off) [$RUNNEL_STATUS_LISTEN]")
	f.DurationVar(&reportEvery, "report-interval", 2*time.Second, "how often to report the pipelines' status to the runnel server at --endpoint for its dashboard; 0 turns reporting off [$RUNNEL_REPORT_INTERVAL]")
	return cmd
}

func (e *env) run(ctx context.Context, file, stateDir, statusListen string, reportEvery time.Duration) error {
	builtins := pipelineBuiltins()
	cfg, err := pipeline.Load(file, builtins)
	if err != nil {
		return err
	}
	if stateDir == "" {
		stateDir = filepath.Join(cfg.Dir(), ".runnel")
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	unlock, err := lockStateDir(stateDir)
	if err != nil {
		return err
	}
	defer unlock()

	client, err := e.client(ctx)
	if err != nil {
		return err
	}
	runner, err := pipeline.New(ctx, cfg, pipeline.Options{
		Kinesis:  client,
		Builtins: builtins,
		StateDir: stateDir,
		// The lock is exclusive where runnel can take one (lockExclusive).
		StateDirLocked: lockExclusive,
		Region:         client.Options().Region,
		Logger:         e.logger,
		Stdout:         e.stdout,
		FunctionEnv:    pipeline.FunctionEnv(ctx, client.Options(), e.getenv, e.logger),
	})
	if err != nil {
		return err
	}
	if err := runner.EnsureStreams(ctx); err != nil {
		_ = runner.Close(context.WithoutCancel(ctx))
		return err
	}

	if statusListen != "" {
		ln, err := net.Listen("tcp", statusListen)
		if err != nil {
			_ = runner.Close(context.WithoutCancel(ctx))
			return fmt.Errorf("status listener: %w", err)
		}
		srv := &http.Server{Handler: runner, ReadHeaderTimeout: 10 * time.Second}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		e.logger.Info("status listening", "url", "http://"+ln.Addr().String()+"/status")
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
			if err := <-served; !errors.Is(err, http.ErrServerClosed) {
				e.logger.Warn("status server", "err", err)
			}
		}()
	}

	sigs := make(chan os.Signal, 1)
	if len(statusSignals) > 0 {
		signal.Notify(sigs, statusSignals...)
		defer signal.Stop(sigs)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-sigs:
				runner.WriteStatus(e.stdout)
			case <-done:
				return
			}
		}
	}()

	if o := client.Options(); reportEvery > 0 && o.BaseEndpoint != nil {
		// A runnel server (not AWS): report to it for its dashboard.
		uctx, stopUplink := context.WithCancel(ctx)
		uplinked := make(chan struct{})
		go func() {
			defer close(uplinked)
			runner.Uplink(uctx, pipeline.UplinkConfig{
				URL: *o.BaseEndpoint, HTTPClient: o.HTTPClient, Credentials: o.Credentials, Region: o.Region,
				Interval: reportEvery, Logger: e.logger,
			})
		}()
		defer func() { stopUplink(); <-uplinked }()
	}

	e.logger.Info("running pipelines", "file", file, "pipelines", len(cfg.Pipelines), "state_dir", stateDir)
	err = runner.Run(ctx)
	close(done)
	// The figures are each shard's totals over the run, kept after the
	// leases are released.
	runner.WriteStatus(e.stdout)
	return err
}

func newConfigCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Work with pipelines files",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "check PIPELINES.yaml...",
		Short: "Validate pipelines files without running them",
		Long: `Load each file as runnel run would and report every problem, each with the
file, line and field it concerns. Exits 1 when any file is invalid.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("%s takes one or more files", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			builtins := pipelineBuiltins()
			var errs []error
			for _, f := range args {
				cfg, err := pipeline.Load(f, builtins)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintf(e.stdout, "%s: ok (%d streams, %d pipelines)\n", f, len(cfg.Streams), len(cfg.Pipelines))
			}
			return errors.Join(errs...)
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "docs",
		Short: "Print the options of every built-in processor as Markdown",
		Long: `Print, for each built-in processor, what it does and a table of its options
(type, default, description), from the same declarations that decode and
check them. The README's section on built-in processors is this output.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := io.WriteString(e.stdout, builtinDocs(pipelineBuiltins()))
			return err
		},
	})
	return cmd
}

// builtinDocs renders the built-in processors and their options as
// Markdown, in name order.
func builtinDocs(builtins pipeline.Builtins) string {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(builtins)) {
		bi := builtins[name]
		fmt.Fprintf(&b, "#### %s\n\n%s.\n\n", name, upperFirst(bi.Doc))
		if bi.Options == nil {
			b.WriteString("No options.\n\n")
			continue
		}
		b.WriteString(options.Markdown(bi.Options.Fields()))
		b.WriteString("\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
