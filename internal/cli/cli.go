// Package cli implements the runnel command line: `runnel serve` and the
// client verbs that talk to any Kinesis endpoint.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/runnel-dev/runnel/internal/app"
	"github.com/runnel-dev/runnel/internal/kinesisclient"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// Main runs the runnel command line with args (without the program name)
// and returns the process exit code: 0 on success, 1 when the work failed,
// 2 for a usage error.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdin: os.Stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv, serve: app.Run}
	return e.main(ctx, args)
}

// env is what every command shares: the streams it writes to, global flag
// values and the logger built from them.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	endpoint  string
	region    string
	logLevel  string
	logFormat string
	logger    *slog.Logger

	// ran is set once flags and arguments have been accepted, so an error
	// returned before that is a usage error.
	ran bool
	// serve runs the server; tests replace it.
	serve func(context.Context, app.Config, *slog.Logger) error
}

// main runs one command line; e is used once.
func (e *env) main(ctx context.Context, args []string) int {
	root := newRoot(e)
	root.SetArgs(args)
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	var ue *usageError
	if !e.ran || errors.As(err, &ue) {
		fmt.Fprintf(e.stderr, "runnel: %v\nRun '%s --help' for usage.\n", err, cmd.CommandPath())
		return exitUsage
	}
	fmt.Fprintf(e.stderr, "runnel: %s\n", describeError(err))
	return exitError
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "runnel",
		Short: "A Kinesis Data Streams server, producers and stream-processing runtime in one binary",
		Long: `runnel serves the Amazon Kinesis Data Streams API with durable local storage
(runnel serve). Its producers (put, produce, generate), its pipeline runtime
(run) and its client commands (stream, tail, bench) talk to any Kinesis
endpoint, its own or AWS's.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			e.ran = true
			if err := applyEnv(cmd.Flags(), e.getenv, map[string]string{
				"log-level":  "RUNNEL_LOG_LEVEL",
				"log-format": "RUNNEL_LOG_FORMAT",
			}); err != nil {
				return err
			}
			logger, err := newLogger(e.stderr, e.logLevel, e.logFormat)
			if err != nil {
				return err
			}
			e.logger = logger
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&e.endpoint, "endpoint", "", `Kinesis endpoint for client commands; "aws" means real AWS Kinesis (default $AWS_ENDPOINT_URL_KINESIS, $AWS_ENDPOINT_URL or `+kinesisclient.DefaultEndpoint+`)`)
	pf.StringVar(&e.region, "region", "", "AWS region for client commands (default from the AWS configuration, else us-east-1)")
	pf.StringVar(&e.logLevel, "log-level", "info", "log level: debug, info, warn or error [$RUNNEL_LOG_LEVEL]")
	pf.StringVar(&e.logFormat, "log-format", "text", "log format: text or json [$RUNNEL_LOG_FORMAT]")

	root.AddCommand(
		newServeCommand(e),
		newStreamCommand(e),
		newPutCommand(e),
		newTailCommand(e),
		newBenchCommand(e),
		newProduceCommand(e),
		newGenerateCommand(e),
		newRunCommand(e), newInvokeCommand(e), newConfigCommand(e), newArchiveCommand(e),
		newCountsCommand(e),
		newReplayCommand(e),
		newVersionCommand(e),
	)
	return root
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, usagef("log format %q: want text or json", format)
	}
}

// client builds the Kinesis client the global flags select.
func (e *env) client(ctx context.Context) (*kinesis.Client, error) {
	c, err := kinesisclient.New(ctx, kinesisclient.Options{Endpoint: e.endpoint, Region: e.region, Logger: e.logger})
	if err != nil {
		return nil, usagef("%v", err)
	}
	return c, nil
}

// usageError marks an error as the caller's mistake in invoking runnel.
type usageError struct{ err error }

func (u *usageError) Error() string { return u.err.Error() }
func (u *usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// exactArgs is cobra.ExactArgs naming the missing arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			if len(names) == 0 {
				return usagef("%s takes no arguments; got %q", cmd.CommandPath(), args)
			}
			return usagef("%s takes %d argument(s): %s; got %d", cmd.CommandPath(), len(names), strings.Join(names, " "), len(args))
		}
		return nil
	}
}

// describeError renders an error for the terminal. AWS API errors become
// "<Type>: <message>"; an endpoint that cannot be reached is named, with
// what to check.
func describeError(err error) string {
	var dial *net.OpError
	if errors.As(err, &dial) && dial.Op == "dial" {
		where := "the Kinesis endpoint"
		var ue *url.Error
		if errors.As(err, &ue) {
			if u, perr := url.Parse(ue.URL); perr == nil {
				where = u.Scheme + "://" + u.Host
			}
		}
		return fmt.Sprintf("cannot reach %s: %v (is runnel serve running there? --endpoint or $AWS_ENDPOINT_URL_KINESIS names another)", where, dial.Err)
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		msg := apiErr.ErrorMessage()
		if msg == "" {
			return apiErr.ErrorCode()
		}
		return apiErr.ErrorCode() + ": " + msg
	}
	return err.Error()
}

// applyEnv sets every flag in names that was not given on the command line
// from its environment variable, when that is set. Flags win over the
// environment.
func applyEnv(fs *pflag.FlagSet, getenv func(string) string, names map[string]string) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		name, ok := names[f.Name]
		if !ok || f.Changed {
			return
		}
		v := getenv(name)
		if v == "" {
			return
		}
		if err := f.Value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("$%s=%q: %w", name, v, err))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return &usageError{err}
	}
	return nil
}
