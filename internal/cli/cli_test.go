package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/app"
	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/testserver"
)

// runServe runs `runnel serve args...` with the given environment and
// returns the configuration the server would have started with.
func runServe(t *testing.T, environ map[string]string, args ...string) (app.Config, int, string) {
	t.Helper()
	var got app.Config
	var stdout, stderr bytes.Buffer
	e := &env{
		stdin:  strings.NewReader(""),
		stdout: &stdout,
		stderr: &stderr,
		getenv: func(k string) string { return environ[k] },
		serve: func(_ context.Context, cfg app.Config, _ *slog.Logger) error {
			got = cfg
			return nil
		},
	}
	code := e.main(t.Context(), append([]string{"serve"}, args...))
	return got, code, stderr.String()
}

func TestServeDefaults(t *testing.T) {
	cfg, code, _ := runServe(t, nil)
	require.Equal(t, 0, code)
	require.Equal(t, app.Defaults(), cfg)
}

func TestServeFlagsWinOverEnvironment(t *testing.T) {
	environ := map[string]string{
		"RUNNEL_LISTEN":             "127.0.0.1:9000",
		"RUNNEL_DATA_DIR":           "/env/data",
		"RUNNEL_FSYNC":              "never",
		"RUNNEL_REGION":             "eu-west-1",
		"RUNNEL_ACCOUNT_ID":         "111111111111",
		"RUNNEL_SHARD_LIMIT":        "20",
		"RUNNEL_SHUTDOWN_TIMEOUT":   "3s",
		"RUNNEL_SHARD_WRITE_LIMITS": "true",
		"RUNNEL_LIMITS":             "aws",
		"RUNNEL_AUTH":               "/env/keys.yaml",
		"RUNNEL_MEMTABLE_MIB":       "16",
		"RUNNEL_CACHE_MIB":          "32",
		"RUNNEL_ALLOW_HOST":         "dev.example,10.0.0.5",
		"RUNNEL_BODY_TIMEOUT":       "2s",
		"RUNNEL_BODY_MIN_RATE":      "1000",
		"RUNNEL_BODY_MEMORY":        "16777216",
		"RUNNEL_PPROF":              "true",
	}
	t.Run("environment only", func(t *testing.T) {
		cfg, code, stderr := runServe(t, environ)
		require.Equal(t, 0, code, stderr)
		require.Equal(t, app.Config{
			Listen: "127.0.0.1:9000", DataDir: "/env/data", Fsync: "never", Region: "eu-west-1",
			AccountID: "111111111111", ShardLimit: 20, ShutdownTimeout: 3 * time.Second, ShardWriteLimits: true,
			Limits: "aws", AuthFile: "/env/keys.yaml", MemTableMiB: 16, CacheMiB: 32,
			AllowedHosts: []string{"dev.example", "10.0.0.5"}, BodyTimeout: 2 * time.Second, BodyMinRate: 1000, BodyMemory: 16 << 20,
			Pprof: true,
		}, cfg)
	})
	t.Run("flags and environment", func(t *testing.T) {
		cfg, code, stderr := runServe(t, environ, "--listen", "127.0.0.1:0", "--fsync=always", "--shard-limit", "7", "--region", "ap-south-1", "--shard-write-limits=false", "--limits", "off", "--memtable-mib", "8", "--cache-mib", "128",
			"--body-timeout", "3s", "--allow-host", "lab.example", "--pprof=false")
		require.Equal(t, 0, code, stderr)
		require.Equal(t, app.Config{
			Listen: "127.0.0.1:0", DataDir: "/env/data", Fsync: "always", Region: "ap-south-1",
			AccountID: "111111111111", ShardLimit: 7, ShutdownTimeout: 3 * time.Second,
			Limits: "off", AuthFile: "/env/keys.yaml", MemTableMiB: 8, CacheMiB: 128,
			AllowedHosts: []string{"lab.example"}, BodyTimeout: 3 * time.Second, BodyMinRate: 1000, BodyMemory: 16 << 20,
		}, cfg)
	})
}

func TestServeUsageErrors(t *testing.T) {
	tests := []struct {
		name    string
		environ map[string]string
		args    []string
		want    []string
	}{
		{"bad env value", map[string]string{"RUNNEL_SHARD_LIMIT": "many"}, nil, []string{"$RUNNEL_SHARD_LIMIT"}},
		{"bad flag value", nil, []string{"--shard-limit", "many"}, []string{"--shard-limit"}},
		{"unknown flag", nil, []string{"--bogus"}, []string{"--bogus"}},
		{"extra argument", nil, []string{"now"}, []string{"takes no arguments"}},
		{"all invalid values at once", map[string]string{"RUNNEL_FSYNC": "sometimes"}, []string{"--account-id", "1", "--listen", "nowhere"},
			[]string{`fsync "sometimes"`, `account id "1"`, `listen address "nowhere"`}},
		{"bad log format", nil, []string{"--log-format", "xml"}, []string{"log format"}},
		{"cache too small", nil, []string{"--cache-mib", "0"}, []string{"cache size 0 MiB"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, code, stderr := runServe(t, tc.environ, tc.args...)
			require.Equal(t, exitUsage, code)
			for _, w := range tc.want {
				require.Contains(t, stderr, w)
			}
			require.Contains(t, stderr, "Run 'runnel serve --help' for usage.")
		})
	}
}

func TestExitCodes(t *testing.T) {
	// Keep the SDK's credential chain off the network.
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"help", []string{"--help"}, exitOK, "Usage:"},
		{"unknown command", []string{"bogus"}, exitUsage, `unknown command "bogus"`},
		{"missing argument", []string{"stream", "describe"}, exitUsage, "NAME"},
		{"bad tail format", []string{"tail", "s", "--format", "xml"}, exitUsage, "--format"},
		{"conflicting follow flags", []string{"tail", "s", "--follow", "--no-follow"}, exitUsage, "follow"},
		// Nothing listens on port 1, so the request itself fails.
		{"unreachable endpoint", []string{"--endpoint", "http://127.0.0.1:1", "stream", "list"}, exitError, "runnel: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &out, getenv: func(string) string { return "" }, serve: app.Run}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			require.Equal(t, tc.code, e.main(ctx, tc.args), out.String())
			require.Contains(t, out.String(), tc.want)
		})
	}
}

func TestDescribeError(t *testing.T) {
	err := &smithy.GenericAPIError{Code: "ResourceNotFoundException", Message: "Stream x under account 000000000000 not found."}
	require.Equal(t, "ResourceNotFoundException: Stream x under account 000000000000 not found.", describeError(err))
}

// runClient runs a client command line and returns its exit code and
// stderr.
func runClient(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }, serve: app.Run}
	return e.main(t.Context(), args), stderr.String()
}

func TestUnreachableEndpointIsNamed(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now
	code, stderr := runClient(t, "stream", "list", "--endpoint", url)
	require.Equal(t, exitError, code, stderr)
	require.Contains(t, stderr, "runnel: cannot reach "+url+": connect: connection refused (is runnel serve running there?")
}

func TestInvalidEndpointIsAUsageError(t *testing.T) {
	t.Parallel()
	for _, endpoint := range []string{"htp:/bad", "127.0.0.1:4567", "http://"} {
		code, stderr := runClient(t, "stream", "list", "--endpoint", endpoint)
		require.Equal(t, exitUsage, code, stderr)
		require.Contains(t, stderr, "is not a URL such as http://127.0.0.1:4567", endpoint)
	}
}

func TestPrintVersion(t *testing.T) {
	var out bytes.Buffer
	printVersion(&out, &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/runnel-dev/runnel", Version: "v0.3.0"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "bfd3ce3a"},
			{Key: "vcs.time", Value: "2026-12-06T02:20:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	})
	require.Equal(t, "runnel v0.3.0\ncommit bfd3ce3a (with uncommitted changes)\ncommitted 2026-12-06T02:20:00Z\nbuilt with go1.26.8\n", out.String())

	code, stderr := runClient(t, "version")
	require.Equal(t, exitOK, code, stderr)
}

// TestClientWithCABundle runs a client command with AWS_CA_BUNDLE set, as
// for a server started with --tls: the SDK adds the bundle to runnel's
// HTTP client.
func TestClientWithCABundle(t *testing.T) {
	t.Setenv("AWS_CA_BUNDLE", testserver.NewTLSFiles(t).CAFile)
	srv := kinesistest.Start(t)
	code, stderr := runClient(t, "stream", "list", "--endpoint", srv.URL)
	require.Equal(t, exitOK, code, stderr)
}

// TestStreamDescribeJSON prints a stream as JSON with only the members
// the server sent, as the service's JSON and the aws CLI show them.
func TestStreamDescribeJSON(t *testing.T) {
	t.Parallel()
	srv := kinesistest.Start(t)
	code, stderr := runClient(t, "stream", "create", "described", "--shards", "2", "--endpoint", srv.URL)
	require.Equal(t, exitOK, code, stderr)

	var stdout, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &errb, getenv: func(string) string { return "" }, serve: app.Run}
	require.Equal(t, exitOK, e.main(t.Context(), []string{"stream", "describe", "described", "--json", "--endpoint", srv.URL}), errb.String())
	require.NotContains(t, stdout.String(), "null")
	var got struct {
		StreamDescriptionSummary struct {
			StreamName     string
			StreamStatus   string
			OpenShardCount int
		}
		Shards []struct{ ShardId string }
	}
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &got), stdout.String())
	require.Equal(t, "described", got.StreamDescriptionSummary.StreamName)
	require.Equal(t, 2, got.StreamDescriptionSummary.OpenShardCount)
	require.Len(t, got.Shards, 2)
}
