// Package handler implements the kinds of Lambda-compatible handler runnel
// invokes with batches of Kinesis records: a long-lived child process
// (Command), an HTTP endpoint (HTTP) and Go functions (Func, Noop, Log).
// Each satisfies lambda.Handler.
package handler

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/runnel-dev/runnel/internal/backoff"
	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/sink"
)

// Defaults of CommandConfig.
const (
	DefaultTimeout       = 60 * time.Second
	DefaultMinBackoff    = 100 * time.Millisecond
	DefaultMaxBackoff    = 30 * time.Second
	DefaultHealthyAfter  = 30 * time.Second
	DefaultStopGrace     = 5 * time.Second
	DefaultMaxResponse   = 6 << 20 // Lambda's synchronous response limit
	maxStderrLine        = 64 << 10
	reapTimeout          = 10 * time.Second
	timeoutEnv           = "RUNNEL_HANDLER_TIMEOUT_MS"
	unsolicitedLineLimit = 100
)

// ErrClosed is returned by Invoke after Close.
var ErrClosed = errors.New("handler: closed")

// CommandConfig configures a Command handler.
type CommandConfig struct {
	// Argv is the program and its arguments; required. The program is
	// looked up in PATH when it contains no slash.
	Argv []string
	// Env is added to runnel's own environment ("KEY=value" entries; a key
	// given here wins). runnel also sets RUNNEL_HANDLER_TIMEOUT_MS to the
	// invocation timeout so a runner can offer get_remaining_time_in_millis.
	Env []string
	// Dir is the working directory; empty means runnel's own.
	Dir string
	// Processes is how many processes run side by side, each handling one
	// invocation at a time. The default is 1.
	Processes int
	// Timeout bounds one invocation, from writing the event to reading the
	// response. A process that overruns it is killed and restarted and the
	// invocation fails. The default is 60s.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the delay before restarting a process
	// that died: it doubles from MinBackoff with each consecutive death, up
	// to MaxBackoff. The defaults are 100ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// HealthyAfter is how long a process must have run for its death not to
	// count as consecutive with the previous one (the backoff resets). The
	// default is 30s.
	HealthyAfter time.Duration
	// StopGrace is how long Close waits for a process to exit after its
	// stdin is closed before killing it. The default is 5s.
	StopGrace time.Duration
	// MaxResponseBytes bounds one response line. The default is 6 MiB,
	// Lambda's limit for a synchronous response.
	MaxResponseBytes int
	// Logger receives the processes' stderr, line by line, and their
	// starts and exits. Nil discards them.
	Logger *slog.Logger
	// ProtocolFDs moves the line protocol off the standard streams: the
	// events go to file descriptor 3 and the responses come from file
	// descriptor 4, while stdin is empty and stdout, like stderr, goes
	// to the logger. A runner that hosts code it does not control (a
	// function that prints) uses it, so nothing printed can be taken for
	// a response.
	ProtocolFDs bool
	// AnyResult takes a response that is JSON but not an object (a
	// string, a number, a list) as success without batch item failures,
	// as Lambda does with a function's return value: only an object can
	// carry batchItemFailures. Without it such a response is malformed.
	AnyResult bool
}

func (c *CommandConfig) setDefaults() {
	if c.Processes == 0 {
		c.Processes = 1
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.HealthyAfter == 0 {
		c.HealthyAfter = DefaultHealthyAfter
	}
	if c.StopGrace == 0 {
		c.StopGrace = DefaultStopGrace
	}
	if c.MaxResponseBytes == 0 {
		c.MaxResponseBytes = DefaultMaxResponse
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c *CommandConfig) validate() error {
	var errs []error
	if len(c.Argv) == 0 || c.Argv[0] == "" {
		errs = append(errs, errors.New("argv: a program is required"))
	}
	if c.Processes < 1 {
		errs = append(errs, fmt.Errorf("processes: must be at least 1, got %d", c.Processes))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout: must be positive, got %v", c.Timeout))
	}
	if c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff {
		errs = append(errs, fmt.Errorf("backoff: need 0 < min (%v) <= max (%v)", c.MinBackoff, c.MaxBackoff))
	}
	if c.MaxResponseBytes < 2 {
		errs = append(errs, fmt.Errorf("maxResponseBytes: must be at least 2, got %d", c.MaxResponseBytes))
	}
	return errors.Join(errs...)
}

// Command runs a handler as long-lived child processes speaking the line
// protocol: runnel writes each event as one line of compact JSON to the
// process's stdin and reads one line from its stdout as the response
// (parsed with lambda.ParseResponse). The process's stderr goes to the
// logger. Processes start on first use.
//
// A response line of the form {"errorType": ..., "errorMessage": ...}, the
// shape Lambda runtimes give an unhandled error, is a *FunctionError: the
// whole batch fails and the process keeps running.
//
// A process that exits, overruns the timeout, or writes a line that is not
// a valid response fails the invocation in flight and is (re)started with
// exponential backoff before the next one: after a bad line its stdout can
// no longer be trusted to pair responses with events.
//
// Invoke is safe for concurrent use; each process serves one invocation at
// a time and invocations wait for a free process. Waiting (for a free
// process, or for a dead one's restart) is not part of the invocation:
// the timeout runs from when the process is given the event, the wait is
// reported to the sink.Reporter of ctx, and when ctx's deadline passes
// before a process could be given the event, Invoke returns an error
// wrapping sink.ErrUnavailable: the batch did not fail, it was not
// delivered. Cancelling ctx stops an invocation in flight; ctx's deadline
// only bounds the wait.
type Command struct {
	cfg   CommandConfig
	env   []string
	slots chan *slot

	closeOnce sync.Once
	closed    chan struct{}
	// removeDir, when set, is a directory of runnel's own (the lambda
	// runner's) that Close removes once the processes are stopped.
	removeDir string
}

var (
	_ lambda.Handler = (*Command)(nil)
	_ RawInvoker     = (*Command)(nil)
)

// RawInvoker is a handler that can also give its response as the function
// wrote it, for showing it to a person (runnel invoke).
type RawInvoker interface {
	InvokeRaw(ctx context.Context, event *lambda.KinesisEvent) (raw []byte, resp *lambda.Response, err error)
}

// slot is one process position of the pool. Only the invocation holding
// the slot (taken from Command.slots) touches it.
type slot struct {
	id        int
	p         *process // nil when not running
	failures  int      // consecutive deaths
	notBefore time.Time
	death     error     // why the last process stopped
	deadSince time.Time // when the failures began
}

// NewCommand validates cfg and returns the handler. No process starts
// until the first Invoke.
func NewCommand(cfg CommandConfig) (*Command, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("command handler: %w", err)
	}
	env := append(os.Environ(), timeoutEnv+"="+strconv.FormatInt(cfg.Timeout.Milliseconds(), 10))
	env = append(env, cfg.Env...)
	c := &Command{cfg: cfg, env: env, slots: make(chan *slot, cfg.Processes), closed: make(chan struct{})}
	for i := range cfg.Processes {
		c.slots <- &slot{id: i}
	}
	return c, nil
}

// Invoke sends event to a process and returns its parsed response. An
// error means the whole batch failed.
func (c *Command) Invoke(ctx context.Context, event *lambda.KinesisEvent) (*lambda.Response, error) {
	_, resp, err := c.InvokeRaw(ctx, event)
	return resp, err
}

// InvokeRaw is Invoke that also returns the response line as the process
// wrote it (nil when there was none), including when it is a function
// error.
func (c *Command) InvokeRaw(ctx context.Context, event *lambda.KinesisEvent) ([]byte, *lambda.Response, error) {
	line, err := json.Marshal(event)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding event: %w", err)
	}
	line = append(line, '\n')
	var s *slot
	waitStart := time.Now()
	select {
	case s = <-c.slots:
	case <-ctx.Done():
		if ctx.Err() == context.DeadlineExceeded {
			return nil, nil, sink.Unavailable(c.target("handler processes"), waitStart,
				fmt.Errorf("all %d busy for %v", c.cfg.Processes, time.Since(waitStart).Round(time.Millisecond)))
		}
		return nil, nil, context.Cause(ctx)
	case <-c.closed:
		return nil, nil, ErrClosed
	}
	defer func() { c.slots <- s }()
	select {
	case <-c.closed:
		return nil, nil, ErrClosed
	default:
	}
	if s.p != nil && s.p.exited() {
		c.stop(s, "exited", errors.New(s.p.describeExit()))
	}
	if s.p == nil {
		if err := c.start(ctx, s); err != nil {
			return nil, nil, err
		}
	}
	// From here the invocation runs: it is bounded by the timeout from
	// the write, and by ctx's cancellation, not its deadline.
	xctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	defer context.AfterFunc(ctx, func() {
		if ctx.Err() != context.DeadlineExceeded {
			cancel(context.Cause(ctx))
		}
	})()
	raw, err := c.exchange(xctx, s, line)
	if err != nil {
		return nil, nil, err
	}
	s.failures, s.deadSince = 0, time.Time{} // it answered: healthy
	if ferr := functionError(raw); ferr != nil {
		return raw, nil, fmt.Errorf("handler process %d: %w", s.id, ferr)
	}
	if c.cfg.AnyResult && json.Valid(raw) && !isObjectOrNull(raw) {
		return raw, &lambda.Response{}, nil
	}
	resp, err := lambda.ParseResponse(raw)
	if err == nil {
		err = lambda.CheckResponse(event, resp)
	}
	if err != nil {
		err = fmt.Errorf("handler process %d: %w", s.id, err)
		c.stop(s, "invalid response", err)
		return raw, nil, err
	}
	return raw, resp, nil
}

// isObjectOrNull reports whether the JSON value raw is an object or null.
func isObjectOrNull(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && (raw[0] == '{' || bytes.Equal(raw, []byte("null")))
}

// exchange writes line to the slot's process, starting it if need be, and
// returns the response line.
func (c *Command) exchange(ctx context.Context, s *slot, line []byte) ([]byte, error) {
	p := s.p
	p.discardUnsolicited(c.cfg.Logger)

	timer := time.NewTimer(c.cfg.Timeout)
	defer timer.Stop()
	_ = p.stdin.SetWriteDeadline(time.Now().Add(c.cfg.Timeout))
	if _, err := p.stdin.Write(line); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("handler process %d: timed out after %v writing the event", s.id, c.cfg.Timeout)
		} else {
			err = fmt.Errorf("handler process %d: writing event: %w (%s)", s.id, err, p.describeExit())
		}
		c.stop(s, "writing event failed", err)
		return nil, err
	}
	select {
	case r, ok := <-p.lines:
		if !ok {
			err := fmt.Errorf("handler process %d: no response: %s", s.id, p.describeExit())
			c.stop(s, "closed its stdout", err)
			return nil, err
		}
		if r.err != nil {
			err := fmt.Errorf("handler process %d: reading response: %w", s.id, r.err)
			c.stop(s, "unreadable response", err)
			return nil, err
		}
		return r.line, nil
	case <-timer.C:
		err := fmt.Errorf("handler process %d: timed out after %v; process killed", s.id, c.cfg.Timeout)
		c.stop(s, "timed out", err)
		return nil, err
	case <-ctx.Done():
		// The response, if it ever comes, would pair with the next event.
		err := fmt.Errorf("handler process %d: %w", s.id, context.Cause(ctx))
		c.stop(s, "invocation cancelled", err)
		return nil, err
	case <-c.closed:
		return nil, ErrClosed
	}
}

// target names what an invocation waits for, in status and errors.
func (c *Command) target(what string) string {
	return fmt.Sprintf("%s (%s)", what, c.cfg.Argv[0])
}

// start waits out the slot's backoff and starts its process. The wait
// is reported to ctx's sink.Reporter; when ctx's deadline comes first the
// error wraps sink.ErrUnavailable.
func (c *Command) start(ctx context.Context, s *slot) error {
	if wait := time.Until(s.notBefore); wait > 0 {
		target := c.target(fmt.Sprintf("handler process %d restarting", s.id))
		sink.ReporterFrom(ctx).Blocked(sink.Wait{Target: target, Since: s.deadSince, Err: s.death})
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			if ctx.Err() == context.DeadlineExceeded {
				return sink.Unavailable(target, s.deadSince, s.death)
			}
			return fmt.Errorf("handler process %d: waiting %v to restart: %w", s.id, wait.Round(time.Millisecond), context.Cause(ctx))
		case <-c.closed:
			t.Stop()
			return ErrClosed
		}
	}
	p, err := startProcess(c.cfg, c.env, s.id)
	if err != nil {
		err = fmt.Errorf("handler process %d: %w", s.id, err)
		c.recordDeath(s, 0, err)
		// The program cannot start: nothing the batch did.
		return sink.Unavailable(c.target(fmt.Sprintf("handler process %d", s.id)), s.deadSince, err)
	}
	s.p = p
	c.cfg.Logger.Info("handler process started", "process", s.id, "pid", p.cmd.Process.Pid, "argv", c.cfg.Argv)
	return nil
}

// stop kills the slot's process, waits for it and schedules the restart;
// cause is what went wrong, shown while the restart is awaited.
func (c *Command) stop(s *slot, reason string, cause error) {
	p := s.p
	if p == nil {
		return
	}
	s.p = nil
	p.kill()
	if !p.wait(reapTimeout) {
		c.cfg.Logger.Error("handler process did not exit after kill", "process", s.id, "pid", p.cmd.Process.Pid)
	}
	ran := time.Since(p.started)
	c.recordDeath(s, ran, cause)
	c.cfg.Logger.Warn("handler process stopped", "process", s.id, "pid", p.cmd.Process.Pid,
		"reason", reason, "exit", p.describeExit(), "ran", ran.Round(time.Millisecond),
		"restart_in", time.Until(s.notBefore).Round(time.Millisecond))
}

// recordDeath counts a death after ran, of cause, and sets when the next
// start may happen.
func (c *Command) recordDeath(s *slot, ran time.Duration, cause error) {
	now := time.Now()
	if ran >= c.cfg.HealthyAfter {
		s.failures = 0
	}
	if s.failures == 0 {
		s.deadSince = now
	}
	s.failures++
	s.death = cause
	s.notBefore = now.Add(backoff.Delay(s.failures, c.cfg.MinBackoff, c.cfg.MaxBackoff))
}

// Close stops every process: stdin is closed so a well-behaved process
// exits on its own, and after StopGrace it is killed. Invocations waiting
// for a process, or in flight, return ErrClosed. Close waits for in-flight
// invocations to give their process back, up to ctx. Calling it again is
// harmless.
func (c *Command) Close(ctx context.Context) error {
	c.closeOnce.Do(func() { close(c.closed) })
	var errs []error
	for range c.cfg.Processes {
		var s *slot
		select {
		case s = <-c.slots:
		case <-ctx.Done():
			return fmt.Errorf("closing command handler: %w", context.Cause(ctx))
		}
		if p := s.p; p != nil {
			s.p = nil
			_ = p.stdin.Close()
			if !p.wait(c.cfg.StopGrace) {
				p.kill()
				if !p.wait(reapTimeout) {
					errs = append(errs, fmt.Errorf("handler process %d (pid %d) did not exit", s.id, p.cmd.Process.Pid))
				}
			}
		}
		c.slots <- s
	}
	if c.removeDir != "" && len(errs) == 0 {
		if err := os.RemoveAll(c.removeDir); err != nil {
			errs = append(errs, fmt.Errorf("removing the runner directory: %w", err))
		}
	}
	return errors.Join(errs...)
}

// process is one running child.
type process struct {
	cmd     *exec.Cmd
	stdin   *os.File
	lines   chan lineResult // closed at end of stdout
	done    chan struct{}   // closed when the process has been waited for
	waitErr error           // set before done is closed
	started time.Time
	printed sync.WaitGroup // the forwarders of stderr (and stdout with ProtocolFDs)
}

type lineResult struct {
	line []byte
	err  error
}

func startProcess(cfg CommandConfig, env []string, id int) (*process, error) {
	cmd := exec.Command(cfg.Argv[0], cfg.Argv[1:]...)
	cmd.Env = env
	cmd.Dir = cfg.Dir
	setProcessGroup(cmd)

	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("creating stdin pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW)
		return nil, fmt.Errorf("creating stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW, outR, outW)
		return nil, fmt.Errorf("creating stderr pipe: %w", err)
	}
	// printR/printW carry the process's stdout to the logger when the
	// protocol has descriptors of its own.
	var printR, printW *os.File
	if cfg.ProtocolFDs {
		if printR, printW, err = os.Pipe(); err != nil {
			closeAll(inR, inW, outR, outW, errR, errW)
			return nil, fmt.Errorf("creating stdout pipe: %w", err)
		}
		cmd.Stdout, cmd.Stderr = printW, errW
		cmd.ExtraFiles = []*os.File{inR, outW} // fds 3 and 4
	} else {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	}
	if err := cmd.Start(); err != nil {
		closeAll(inR, inW, outR, outW, errR, errW, printR, printW)
		return nil, fmt.Errorf("starting %q: %w", cfg.Argv[0], err)
	}
	// The child holds its own copies now.
	closeAll(inR, outW, errW, printW)

	p := &process{
		cmd:     cmd,
		stdin:   inW,
		lines:   make(chan lineResult, 1),
		done:    make(chan struct{}),
		started: time.Now(),
	}
	logger := cfg.Logger.With("process", id, "pid", cmd.Process.Pid)
	go p.readStdout(outR, cfg.MaxResponseBytes)
	p.printed.Add(1)
	go func() {
		defer p.printed.Done()
		forwardLines(errR, logger, "handler stderr")
	}()
	if printR != nil {
		p.printed.Add(1)
		go func() {
			defer p.printed.Done()
			forwardLines(printR, logger, "handler stdout")
		}()
	}
	go func() {
		p.waitErr = cmd.Wait()
		// The process is gone; make sure nothing it started holds the
		// pipes open, so the readers finish.
		killGroup(cmd)
		p.printed.Wait()
		_ = inW.Close()
		close(p.done)
	}()
	return p, nil
}

// readStdout delivers each line of r to p.lines until EOF or a read error,
// then closes p.lines. A line over max bytes is delivered as an error and
// ends reading.
func (p *process) readStdout(r *os.File, max int) {
	defer close(p.lines)
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := readLine(br, max)
		if len(line) > 0 || err == nil {
			p.lines <- lineResult{line: line}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				p.lines <- lineResult{err: err}
			}
			return
		}
	}
}

// readLine reads one line without its newline (and a trailing \r). At EOF
// a partial last line is returned with io.EOF.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > max+1 {
			return nil, fmt.Errorf("response line longer than %d bytes", max)
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return line, err
		}
	}
}

// forwardLines logs each line of r, with msg, until EOF. Lines longer
// than maxStderrLine are logged in pieces.
func forwardLines(r *os.File, logger *slog.Logger, msg string) {
	defer r.Close()
	br := bufio.NewReaderSize(r, maxStderrLine)
	for {
		chunk, err := br.ReadSlice('\n')
		if text := bytes.TrimRight(chunk, "\r\n"); len(text) > 0 {
			logger.Info(msg, "line", string(text))
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// discardUnsolicited drops lines the process wrote while no invocation was
// waiting for one, so they are not taken as the next response.
func (p *process) discardUnsolicited(logger *slog.Logger) {
	for range unsolicitedLineLimit {
		select {
		case r, ok := <-p.lines:
			if !ok {
				return
			}
			logger.Warn("handler process wrote to stdout between invocations; line dropped", "pid", p.cmd.Process.Pid, "line", string(r.line), "err", r.err)
		default:
			return
		}
	}
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) kill() { killGroup(p.cmd) }

// wait reports whether the process was reaped within d.
func (p *process) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// describeExit says how the process ended, waiting briefly for it to be
// reaped, or that it is still running.
func (p *process) describeExit() string {
	if !p.wait(time.Second) {
		return "still running"
	}
	if p.waitErr == nil {
		return "exited with status 0"
	}
	return p.waitErr.Error()
}

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			_ = f.Close()
		}
	}
}
