package handler

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// The runners runnel ships for Lambda functions as written, one per
// runtime, written to disk when a Lambda handler is built.
//
//go:embed runtime/runner.js runtime/runner.py
var runners embed.FS

// Runtimes of Lambda handlers: the runner file and the program that runs
// it.
var runtimes = map[string]struct{ runner, program, execEnv string }{
	RuntimeNode:   {"runtime/runner.js", "node", "AWS_Lambda_nodejs"},
	RuntimePython: {"runtime/runner.py", "python3", "AWS_Lambda_python"},
}

// Lambda handler runtimes.
const (
	RuntimeNode   = "nodejs"
	RuntimePython = "python"
)

// DefaultMemorySize is the memory size a Lambda handler reports to its
// function (context.memoryLimitInMB), Lambda's default.
const DefaultMemorySize = 128

var handlerName = regexp.MustCompile(`^[A-Za-z0-9_$/.-]+\.[A-Za-z_$][A-Za-z0-9_$]*$`)

// LambdaConfig configures a Lambda handler: a function written for AWS
// Lambda, run unchanged.
type LambdaConfig struct {
	// Runtime is nodejs or python (a version suffix, as in nodejs20.x or
	// python3.12, is accepted and ignored: the node or python3 in PATH
	// runs the function); required.
	Runtime string
	// Handler is MODULE.FUNCTION, as Lambda takes it: index.handler is
	// the handler export of index.js (or .mjs, .cjs), handler.handler
	// the handler function of handler.py; required.
	Handler string
	// Dir is the function's directory, where the module is found;
	// required.
	Dir string
	// FunctionName is the function's name (context.functionName,
	// AWS_LAMBDA_FUNCTION_NAME); required.
	FunctionName string
	// Region is the function's AWS_REGION unless the environment sets
	// one. Default us-east-1.
	Region string
	// MemorySize is what the function is told its memory is, in MB; it
	// does not limit the process. Default 128.
	MemorySize int
	// RunnerDir is where the runner file is written: a directory only
	// this user may write to (created 0700 if missing). Default: a new
	// private directory in the system's temporary directory, removed by
	// Close.
	RunnerDir string
	// Command configures the processes (Env, Processes, Timeout, backoff,
	// Logger...). Argv, Dir, ProtocolFDs and AnyResult are set by
	// NewLambda.
	Command CommandConfig
}

// runtimeOf returns the runtime key of name: nodejs, nodejs20.x, python,
// python3.12 and the like.
func runtimeOf(name string) (string, bool) {
	for _, r := range []string{RuntimeNode, RuntimePython} {
		if name == r || strings.HasPrefix(name, r) && name[len(r)] >= '0' && name[len(r)] <= '9' {
			return r, true
		}
	}
	return "", false
}

// CheckRuntime reports a runtime name NewLambda does not know.
func CheckRuntime(runtime string) error {
	if _, ok := runtimeOf(runtime); !ok {
		return fmt.Errorf("runtime: want nodejs or python (or a versioned name such as nodejs20.x, python3.12), got %q", runtime)
	}
	return nil
}

// CheckFunction reports a handler name that is not MODULE.FUNCTION.
func CheckFunction(handler string) error {
	if !handlerName.MatchString(handler) {
		return fmt.Errorf("handler: want MODULE.FUNCTION such as index.handler or handler.handler, got %q", handler)
	}
	return nil
}

// NewLambda returns a Command that runs the function with runnel's runner
// for its runtime: a long-lived process that loads the module once and
// calls the function with each event and a Lambda context object
// (function name, request id, remaining time, ARN, memory size, log
// group), as Lambda does. Node functions may return a promise (async),
// call the callback, or call context.succeed, fail or done; Python
// functions return. What the function returns is its response: an object
// is parsed for batchItemFailures, any other value is success. What it
// throws is a function error (errorType, errorMessage), failing the
// batch. The protocol runs on file descriptors 3 and 4, so what the
// function prints on stdout and stderr goes to the logger.
//
// The function's environment is runnel's, then Lambda's variables
// (AWS_LAMBDA_FUNCTION_NAME, AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
// AWS_LAMBDA_LOG_GROUP_NAME, AWS_EXECUTION_ENV, LAMBDA_TASK_ROOT,
// _HANDLER, AWS_REGION), then cfg.Command.Env, which wins.
func NewLambda(cfg LambdaConfig) (*Command, error) {
	errs := []error{CheckRuntime(cfg.Runtime), CheckFunction(cfg.Handler)}
	if cfg.Dir == "" {
		errs = append(errs, errors.New("dir: the function's directory is required"))
	} else if st, err := os.Stat(cfg.Dir); err != nil || !st.IsDir() {
		errs = append(errs, fmt.Errorf("dir: %q is not a directory", cfg.Dir))
	}
	if cfg.FunctionName == "" {
		errs = append(errs, errors.New("function name is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("lambda handler: %w", err)
	}
	rt, _ := runtimeOf(cfg.Runtime)
	spec := runtimes[rt]
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.MemorySize == 0 {
		cfg.MemorySize = DefaultMemorySize
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("lambda handler: %w", err)
	}
	runnerDir, own := cfg.RunnerDir, ""
	if runnerDir == "" {
		if runnerDir, err = os.MkdirTemp("", "runnel-lambda-"); err != nil {
			return nil, fmt.Errorf("lambda handler: the runner's directory: %w", err)
		}
		own = runnerDir
	}
	runner, err := writeRunner(runnerDir, spec.runner)
	if err != nil {
		if own != "" {
			_ = os.RemoveAll(own)
		}
		return nil, fmt.Errorf("lambda handler: %w", err)
	}
	env := []string{
		"AWS_LAMBDA_FUNCTION_NAME=" + cfg.FunctionName,
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + strconv.Itoa(cfg.MemorySize),
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/" + cfg.FunctionName,
		"AWS_EXECUTION_ENV=" + spec.execEnv,
		"LAMBDA_TASK_ROOT=" + dir,
		"_HANDLER=" + cfg.Handler,
		"PYTHONUNBUFFERED=1",
	}
	if os.Getenv("AWS_REGION") == "" {
		env = append(env, "AWS_REGION="+cfg.Region)
	}
	if os.Getenv("AWS_DEFAULT_REGION") == "" {
		env = append(env, "AWS_DEFAULT_REGION="+cfg.Region)
	}
	cc := cfg.Command
	cc.Env = append(env, cc.Env...)
	cc.Argv = []string{spec.program, runner, dir, cfg.Handler}
	cc.Dir = dir
	cc.ProtocolFDs = true
	cc.AnyResult = true
	c, err := NewCommand(cc)
	if err != nil {
		if own != "" {
			_ = os.RemoveAll(own)
		}
		return nil, err
	}
	c.removeDir = own
	return c, nil
}

// writeRunner writes the embedded runner name into dir, which it
// creates (0700) if missing and refuses if another user could write to
// it, under a name that carries its content's hash, so runners of
// different runnel versions do not collide. The file is written afresh
// (0600, renamed into place), never reused, so its content is runnel's.
// It returns the file's absolute path, since the function runs in a
// directory of its own.
func writeRunner(dir, name string) (string, error) {
	data, err := runners.ReadFile(name)
	if err != nil {
		return "", err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return "", fmt.Errorf("writing the %s runner: %w", filepath.Ext(name), err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("writing the %s runner: %w", filepath.Ext(name), err)
	}
	if st, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("writing the %s runner: %w", filepath.Ext(name), err)
	} else if st.Mode().Perm()&0o022 != 0 {
		return "", fmt.Errorf("writing the %s runner: %s may be written by other users (mode %v); give a directory only this user can write to", filepath.Ext(name), dir, st.Mode().Perm())
	}
	sum := sha256.Sum256(data)
	path := filepath.Join(dir, "runnel-lambda-"+hex.EncodeToString(sum[:6])+"-"+filepath.Base(name))
	tmp, err := os.CreateTemp(dir, ".runnel-lambda-*")
	if err != nil {
		return "", fmt.Errorf("writing the runner: %w", err)
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return "", fmt.Errorf("writing the runner: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return "", fmt.Errorf("writing the runner: %w", err)
	}
	return path, nil
}
