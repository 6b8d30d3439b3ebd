package handler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/runneltest"
)

// needProgram skips the test when program is not in PATH, unless
// RUNNEL_INTEGRATION=required.
func needProgram(t *testing.T, program string) {
	t.Helper()
	if _, err := exec.LookPath(program); err != nil {
		if os.Getenv("RUNNEL_INTEGRATION") == "required" {
			t.Fatalf("%s not found and RUNNEL_INTEGRATION=required: %v", program, err)
		}
		t.Skipf("%s not found", program)
	}
}

// newLambda starts a Lambda handler for the function handlerName of the
// test function directory dir; its log goes to the returned buffer.
func newLambda(t *testing.T, runtime, dir, handlerName string, tune func(*LambdaConfig)) (*Command, *runneltest.SyncBuffer) {
	t.Helper()
	rt, _ := runtimeOf(runtime)
	needProgram(t, runtimes[rt].program)
	logs := &runneltest.SyncBuffer{}
	cfg := LambdaConfig{
		Runtime:      runtime,
		Handler:      handlerName,
		Dir:          filepath.Join("testdata", "lambda", dir),
		FunctionName: "fn-test",
		Region:       "eu-west-1",
		RunnerDir:    t.TempDir(),
		Command: CommandConfig{
			Env:        []string{"GREETING=hi"},
			Timeout:    20 * time.Second,
			MinBackoff: 10 * time.Millisecond,
			Logger:     slog.New(slog.NewTextHandler(logs, nil)),
		},
	}
	if tune != nil {
		tune(&cfg)
	}
	h, err := NewLambda(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, h.Close(ctx))
	})
	return h, logs
}

func invokeCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// seen is what the test functions report of their context.
type seen struct {
	FunctionName       string `json:"functionName"`
	FunctionVersion    string `json:"functionVersion"`
	InvokedFunctionArn string `json:"invokedFunctionArn"`
	MemoryLimitInMB    string `json:"memoryLimitInMB"`
	LogGroupName       string `json:"logGroupName"`
	AwsRequestID       string `json:"awsRequestId"`
	Remaining          int64  `json:"remaining"`
	Greeting           string `json:"greeting"`
	Region             string `json:"region"`
	Cwd                string `json:"cwd"`
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func checkSeen(t *testing.T, raw []byte) seen {
	t.Helper()
	var out struct {
		Seen seen `json:"seen"`
	}
	require.NoError(t, json.Unmarshal(raw, &out), string(raw))
	s := out.Seen
	require.Equal(t, "fn-test", s.FunctionName)
	require.Equal(t, "arn:aws:lambda:"+region()+":000000000000:function:fn-test", s.InvokedFunctionArn)
	require.Equal(t, "128", s.MemoryLimitInMB)
	require.Equal(t, "/aws/lambda/fn-test", s.LogGroupName)
	require.Regexp(t, uuidRE, s.AwsRequestID)
	require.Greater(t, s.Remaining, int64(0))
	require.LessOrEqual(t, s.Remaining, int64(20000))
	require.Equal(t, "hi", s.Greeting, "env from the configuration")
	return s
}

// region is the function's AWS_REGION: runnel's own when set, else the
// configured one.
func region() string {
	if r := os.Getenv("AWS_REGION"); r != "" {
		return r
	}
	return "eu-west-1"
}

func TestLambdaNodeAsync(t *testing.T) {
	t.Parallel()
	h, logs := newLambda(t, RuntimeNode, "node", "index.handler", nil)
	ctx := invokeCtx(t)

	raw, resp, err := h.InvokeRaw(ctx, event(`{"n":1}`, `{"n":2,"fail":true}`, `{"n":3}`))
	require.NoError(t, err)
	require.Equal(t, []lambda.BatchItemFailure{{ItemIdentifier: "2"}}, resp.BatchItemFailures)
	s := checkSeen(t, raw)
	require.Equal(t, "$LATEST", s.FunctionVersion)
	require.Equal(t, region(), s.Region)
	dir, err := filepath.Abs("testdata/lambda/node")
	require.NoError(t, err)
	require.Equal(t, dir, s.Cwd)

	raw2, resp, err := h.InvokeRaw(ctx, event(`{"n":4}`))
	require.NoError(t, err)
	require.Empty(t, resp.BatchItemFailures)
	require.NotEqual(t, s.AwsRequestID, checkSeen(t, raw2).AwsRequestID, "a request id per invocation")

	// console.log went to the log with Lambda's prefix, and what the
	// function printed that looks like a response stayed a log line.
	runneltest.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(logs.String(), `\t`+s.AwsRequestID+`\tINFO\t records 3`) &&
			strings.Contains(logs.String(), "END RequestId: "+s.AwsRequestID) &&
			strings.Contains(logs.String(), `line="{\"batchItemFailures\":[]}"`)
	}, "function output not in the log:\n%s", logs)
	require.Equal(t, 1, strings.Count(logs.String(), "handler process started"), "one long-lived process:\n%s", logs)
}

// TestLambdaRelativeRunnerDir: runnel run's default state directory is
// relative (.runnel beside the pipelines file) while the function runs in
// its own directory, so the runner must be found from there too.
func TestLambdaRelativeRunnerDir(t *testing.T) {
	t.Parallel()
	wd, err := os.Getwd()
	require.NoError(t, err)
	rel, err := filepath.Rel(wd, t.TempDir())
	require.NoError(t, err)
	require.False(t, filepath.IsAbs(rel))
	h, logs := newLambda(t, RuntimeNode, "node", "index.handler", func(c *LambdaConfig) { c.RunnerDir = rel })

	_, resp, err := h.InvokeRaw(invokeCtx(t), event(`{"n":1}`))
	require.NoError(t, err, "log:\n%s", logs)
	require.Empty(t, resp.BatchItemFailures)
}

func TestLambdaNodeStyles(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, handler string
		payloads      []string
		raw           string // the response, when it succeeds
		errType       string // the function error's type, when it fails
		errMsg        string
		log           string // a line expected in the log
	}{
		{name: "callback", handler: "index.callback", payloads: []string{`{}`, `{}`}, raw: `"Delivered 2 records"`},
		{name: "callback error", handler: "index.callbackError", payloads: []string{`{}`}, errType: "RangeError", errMsg: "reading out of range"},
		{name: "context.succeed", handler: "index.legacy", payloads: []string{`{"n":1}`, `{"n":2}`}, raw: `{"sum":3}`},
		{name: "context.fail", handler: "index.legacy", payloads: []string{`{"n":-1}`}, errType: "Error", errMsg: "negative sum"},
		{name: "async throws", handler: "index.boom", payloads: []string{`{}`}, errType: "TypeError", errMsg: "bad reading", log: "about to fail"},
		{name: "module missing", handler: "missing.handler", payloads: []string{`{}`}, errType: "Runtime.ImportModuleError", errMsg: "Cannot find module 'missing'"},
		{name: "export missing", handler: "index.nothing", payloads: []string{`{}`}, errType: "Runtime.HandlerNotFound", errMsg: "index.nothing is undefined or not exported"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, logs := newLambda(t, RuntimeNode, "node", tc.handler, nil)
			raw, resp, err := h.InvokeRaw(invokeCtx(t), event(tc.payloads...))
			if tc.errType == "" {
				require.NoError(t, err)
				require.JSONEq(t, tc.raw, string(raw))
				require.Empty(t, resp.BatchItemFailures)
			} else {
				var ferr *FunctionError
				require.True(t, errors.As(err, &ferr), "want a function error, got %v", err)
				require.Equal(t, tc.errType, ferr.Type)
				require.Contains(t, ferr.Message, tc.errMsg)
			}
			if tc.log != "" {
				runneltest.Eventually(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), tc.log) },
					"%q not in the log:\n%s", tc.log, logs)
			}
		})
	}
}

func TestLambdaNodeESM(t *testing.T) {
	t.Parallel()
	h, _ := newLambda(t, "nodejs20.x", "esm", "app.handler", nil)
	raw, _, err := h.InvokeRaw(invokeCtx(t), event(`{}`, `{}`, `{}`))
	require.NoError(t, err)
	require.JSONEq(t, `{"records":3}`, string(raw))
}

func TestLambdaPython(t *testing.T) {
	t.Parallel()
	t.Run("context", func(t *testing.T) {
		t.Parallel()
		h, logs := newLambda(t, RuntimePython, "python", "function.context_seen", nil)
		raw, resp, err := h.InvokeRaw(invokeCtx(t), event(`{}`, `{}`))
		require.NoError(t, err)
		require.Empty(t, resp.BatchItemFailures)
		s := checkSeen(t, raw)
		runneltest.Eventually(t, 10*time.Second, func() bool {
			return strings.Contains(logs.String(), `line="records 2"`) &&
				strings.Contains(logs.String(), "REPORT RequestId: "+s.AwsRequestID)
		}, "print() not in the log:\n%s", logs)
	})
	t.Run("raises", func(t *testing.T) {
		t.Parallel()
		h, _ := newLambda(t, RuntimePython, "python", "function.boom", nil)
		_, _, err := h.InvokeRaw(invokeCtx(t), event(`{}`, `{}`, `{}`))
		var ferr *FunctionError
		require.True(t, errors.As(err, &ferr), "want a function error, got %v", err)
		require.Equal(t, "ValueError", ferr.Type)
		require.Equal(t, "bad reading 3", ferr.Message)
	})
	t.Run("number", func(t *testing.T) {
		t.Parallel()
		h, _ := newLambda(t, "python3.12", "python", "function.total", nil)
		raw, resp, err := h.InvokeRaw(invokeCtx(t), event(`{"n":2}`, `{"n":5}`))
		require.NoError(t, err)
		require.Equal(t, "7", string(raw))
		require.Empty(t, resp.BatchItemFailures)
	})
	t.Run("example unchanged", func(t *testing.T) {
		t.Parallel()
		needProgram(t, "python3")
		testLambdaExample(t, func(cfg CommandConfig) (*Command, error) {
			return NewLambda(LambdaConfig{
				Runtime: RuntimePython, Handler: "handler.handler", Dir: "../../examples/handler-python",
				FunctionName: "example", RunnerDir: t.TempDir(), Command: cfg,
			})
		})
	})
}

func TestLambdaTimeoutKillsAndRestarts(t *testing.T) {
	t.Parallel()
	h, logs := newLambda(t, RuntimeNode, "node", "index.hang", func(c *LambdaConfig) {
		c.Command.Timeout = 500 * time.Millisecond
	})
	ctx := invokeCtx(t)
	for i := range 2 {
		start := time.Now()
		_, _, err := h.InvokeRaw(ctx, event(`{}`))
		require.ErrorContains(t, err, "timed out after 500ms; process killed", "invocation %d", i)
		require.Less(t, time.Since(start), 15*time.Second)
	}
	// The second invocation ran in a new process.
	require.Equal(t, 2, strings.Count(logs.String(), "handler process started"), logs.String())
	require.Contains(t, logs.String(), "reason=\"timed out\"")
}

func TestNewLambdaValidates(t *testing.T) {
	t.Parallel()
	_, err := NewLambda(LambdaConfig{Runtime: "ruby3.3", Handler: "index", Dir: "testdata/nowhere"})
	require.Error(t, err)
	for _, want := range []string{`runtime: want nodejs or python`, `handler: want MODULE.FUNCTION`, `dir: "testdata/nowhere" is not a directory`, "function name is required"} {
		require.ErrorContains(t, err, want)
	}
	require.NoError(t, CheckRuntime("nodejs18.x"))
	require.NoError(t, CheckRuntime("python"))
	require.Error(t, CheckRuntime("nodejs-lts"))
	require.NoError(t, CheckFunction("src/app.lambdaHandler"))
	require.NoError(t, CheckFunction("pkg.module.handler"))
	require.Error(t, CheckFunction("handler."))
}

// TestLambdaRunnerFiles: with no RunnerDir the runner goes to a new
// private directory (0700, the file 0600) that Close removes; a runner
// file already in a given directory is replaced by runnel's, never run;
// and a directory other users may write to is refused.
func TestLambdaRunnerFiles(t *testing.T) {
	t.Parallel()
	needProgram(t, "node")
	h, logs := newLambda(t, RuntimeNode, "node", "index.handler", func(c *LambdaConfig) { c.RunnerDir = "" })
	runner := h.cfg.Argv[1]
	dir := filepath.Dir(runner)
	require.Equal(t, filepath.Clean(os.TempDir()), filepath.Dir(dir))
	st, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	st, err = os.Stat(runner)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	_, resp, err := h.InvokeRaw(invokeCtx(t), event(`{"n":1}`))
	require.NoError(t, err, "log:\n%s", logs)
	require.Empty(t, resp.BatchItemFailures)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, h.Close(ctx))
	_, err = os.Stat(dir)
	require.ErrorIs(t, err, os.ErrNotExist, "the private runner directory is removed")

	// A file planted under the runner's name is not run.
	given := t.TempDir()
	planted := filepath.Join(given, filepath.Base(runner))
	require.NoError(t, os.WriteFile(planted, []byte(`process.exit(3)`), 0o644))
	h2, logs2 := newLambda(t, RuntimeNode, "node", "index.handler", func(c *LambdaConfig) { c.RunnerDir = given })
	require.Equal(t, planted, h2.cfg.Argv[1])
	want, err := runners.ReadFile(runtimes[RuntimeNode].runner)
	require.NoError(t, err)
	got, err := os.ReadFile(planted)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))
	_, resp, err = h2.InvokeRaw(invokeCtx(t), event(`{"n":1}`))
	require.NoError(t, err, "log:\n%s", logs2)
	require.Empty(t, resp.BatchItemFailures)

	shared := t.TempDir()
	require.NoError(t, os.Chmod(shared, 0o777))
	_, err = NewLambda(LambdaConfig{Runtime: RuntimeNode, Handler: "index.handler", Dir: filepath.Join("testdata", "lambda", "node"),
		FunctionName: "fn-test", RunnerDir: shared})
	require.ErrorContains(t, err, "may be written by other users")
}

// TestLambdaNodeSyncReturnsNothing: a synchronous handler that returns
// nothing is answered null, as Lambda answers once the event loop is
// empty: at once when it left no work, after its timer ran when it set
// one.
func TestLambdaNodeSyncReturnsNothing(t *testing.T) {
	t.Parallel()
	h, logs := newLambda(t, RuntimeNode, "node", "index.syncNothing", nil)
	raw, _, err := h.InvokeRaw(invokeCtx(t), event(`{}`))
	require.NoError(t, err, "log:\n%s", logs)
	require.JSONEq(t, `null`, string(raw))

	h, logs = newLambda(t, RuntimeNode, "node", "index.syncLater", nil)
	for i := range 3 {
		raw, _, err = h.InvokeRaw(invokeCtx(t), event(`{}`, `{}`))
		require.NoError(t, err, "log:\n%s", logs)
		require.JSONEq(t, `null`, string(raw))
		// The timer's line is written before the invocation ends.
		runneltest.Eventually(t, 10*time.Second, func() bool { return strings.Count(logs.String(), "END RequestId") == i+1 }, "no END line:\n%s", logs)
		l := logs.String()
		require.Equal(t, i+1, strings.Count(l, "written later 2"), "the timer ran before the answer:\n%s", l)
		require.Less(t, strings.LastIndex(l, "written later 2"), strings.LastIndex(l, "END RequestId"), "the timer ran before END:\n%s", l)
	}
}

// TestLambdaNodeCallbackWaitsForEmptyEventLoop: a callback answers once
// the work the invocation started is done, as Lambda's
// context.callbackWaitsForEmptyEventLoop (true by default) says, and at
// once when the function sets it to false.
func TestLambdaNodeCallbackWaitsForEmptyEventLoop(t *testing.T) {
	t.Parallel()
	h, logs := newLambda(t, RuntimeNode, "node", "index.callbackLater", nil)
	const line = "written after the callback"
	for i, wait := range []bool{true, false, true} {
		raw, _, err := h.InvokeRaw(invokeCtx(t), event(fmt.Sprintf(`{"wait":%t,"ms":%d}`, wait, map[bool]int{true: 50, false: 3000}[wait])))
		require.NoError(t, err, "log:\n%s", logs)
		require.JSONEq(t, `"answered"`, string(raw))
		runneltest.Eventually(t, 10*time.Second, func() bool { return strings.Count(logs.String(), "END RequestId") == i+1 }, "no END line:\n%s", logs)
		l := logs.String()
		if wait {
			// The timer's line is written before the invocation ends.
			require.Equal(t, i+1, strings.Count(l, line), "answered before the timer ran:\n%s", l)
			require.Less(t, strings.LastIndex(l, line), strings.LastIndex(l, "END RequestId"), "END before the timer ran:\n%s", l)
		} else {
			require.Greater(t, strings.LastIndex(l, "END RequestId"), strings.LastIndex(l, line), "waited for the timer:\n%s", l)
			// Let the timer run before the next invocation, as a frozen
			// Lambda environment runs it when thawed.
			runneltest.Eventually(t, 10*time.Second, func() bool { return strings.Count(logs.String(), line) == i+1 }, "the timer never ran:\n%s", logs)
		}
	}
}
