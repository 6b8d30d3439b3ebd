// Package runneltest runs the runnel binary as a real process for tests:
// it builds cmd/runnel once per test binary, starts `runnel serve` on
// 127.0.0.1:0 and keeps what the process writes.
package runneltest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

var builds struct {
	mu   sync.Mutex
	dir  string
	bins map[string]*built // package → its build
}

type built struct {
	once sync.Once
	path string
	err  error
}

// Binary returns the path of a runnel binary built from this module's
// cmd/runnel (see Build).
func Binary(t testing.TB) string {
	t.Helper()
	return Build(t, "github.com/runnel-dev/runnel/cmd/runnel")
}

// Build returns the path of a binary built from the Go package pkg (an
// import path, or a directory relative to the calling test's package).
// The first call for a package builds it, into a directory that outlives
// the test; Main removes that directory when the test binary ends. It is
// safe to call from concurrent tests.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	builds.mu.Lock()
	if builds.bins == nil {
		builds.bins = map[string]*built{}
	}
	b, ok := builds.bins[pkg]
	if !ok {
		b = &built{}
		builds.bins[pkg] = b
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "runneltest-")
		if err != nil {
			builds.mu.Unlock()
			t.Fatalf("building %s: %v", pkg, err)
		}
		builds.dir = dir
	}
	dir := builds.dir
	builds.mu.Unlock()
	b.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		// One directory per package keeps each binary's own name.
		sub, err := os.MkdirTemp(dir, "bin-")
		if err != nil {
			b.err = err
			return
		}
		bin := filepath.Join(sub, filepath.Base(filepath.Clean(pkg)))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		// Test binaries of several packages run at once (go test -p) and
		// build the same packages: one at a time, the later builds find
		// the first one's work in the build cache and only link.
		unlock, err := lockBuilds()
		if err != nil {
			b.err = err
			return
		}
		defer unlock()
		out, err := exec.CommandContext(ctx, goTool, "build", "-o", bin, pkg).CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build: %w\n%s", err, out)
			return
		}
		b.path = bin
	})
	if b.err != nil {
		t.Fatalf("building %s: %v", pkg, b.err)
	}
	return b.path
}

// Main runs the tests and then removes the binaries Build built. Call it
// from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	builds.mu.Lock()
	if builds.dir != "" {
		_ = os.RemoveAll(builds.dir)
	}
	builds.mu.Unlock()
	os.Exit(code)
}

// Process is a runnel process started by a test, with its output kept.
// Cleanup kills it if it still runs when the test ends.
type Process struct {
	// URL is where a server started by Serve listens.
	URL string

	cmd    *exec.Cmd
	done   chan struct{}
	exited error

	mu             sync.Mutex
	stdout, stderr bytes.Buffer
}

// Start runs the runnel binary with args. env is added to the test's
// environment.
func Start(t testing.TB, env []string, args ...string) *Process {
	t.Helper()
	p := &Process{cmd: exec.Command(Binary(t), args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	outR, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting runnel: %v", err)
	}
	var wg sync.WaitGroup
	for _, pipe := range []struct {
		r   io.Reader
		buf *bytes.Buffer
	}{{outR, &p.stdout}, {errR, &p.stderr}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := bufio.NewScanner(pipe.r)
			sc.Buffer(make([]byte, 64<<10), 4<<20)
			for sc.Scan() {
				p.mu.Lock()
				pipe.buf.WriteString(sc.Text() + "\n")
				p.mu.Unlock()
			}
			_, _ = io.Copy(io.Discard, pipe.r)
		}()
	}
	go func() {
		wg.Wait()
		p.exited = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.Kill)
	return p
}

// listening matches the log line, text or JSON, with which runnel serve
// announces that it is ready and the URL it serves.
var listening = regexp.MustCompile(`msg"?[=:]"?listening.*url"?[=:]"?(https?://127\.0\.0\.1:[1-9][0-9]*)`)

// Serve runs `runnel serve --listen 127.0.0.1:0` with args added and
// waits until it logs the URL it listens on.
func Serve(t testing.TB, args ...string) *Process {
	t.Helper()
	return ServeEnv(t, nil, args...)
}

// ServeEnv is Serve with env added to the test's environment.
func ServeEnv(t testing.TB, env []string, args ...string) *Process {
	t.Helper()
	p := Start(t, env, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	p.URL = p.WaitFor(t, listening, time.Minute)[1]
	return p
}

// WaitFor polls the process's stderr until re matches it, and returns the
// submatches. It fails the test if the process exits first or d passes.
func (p *Process) WaitFor(t testing.TB, re *regexp.Regexp, d time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		stderr := p.Stderr()
		if m := re.FindStringSubmatch(stderr); m != nil {
			return m
		}
		select {
		case <-p.done:
			if m := re.FindStringSubmatch(p.Stderr()); m != nil {
				return m
			}
			t.Fatalf("%s exited (%v) before logging %s\n%s", p.cmd.Args, p.exited, re, p.Stderr())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s within %v\n%s", p.cmd.Args, re, d, stderr)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// Stdout returns what the process has written to stdout so far.
func (p *Process) Stdout() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String()
}

// Stderr returns what the process has written to stderr, its log, so far.
func (p *Process) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// Pid is the process id, to read its figures (such as /proc/<pid>/status).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited and its output is read.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err returns how the process exited. Call it after Done is closed.
func (p *Process) Err() error { return p.exited }

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill sends SIGKILL, unless the process has exited, and waits until it is
// gone.
func (p *Process) Kill() {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// ErrStillRunning is returned by Stop when the process outlives its
// timeout.
var ErrStillRunning = errors.New("runneltest: process still running")

// Stop sends SIGTERM and waits up to d for the process to exit. It returns
// how the process exited, or ErrStillRunning, in which case it kills it.
func (p *Process) Stop(d time.Duration) error {
	return p.StopWith(syscall.SIGTERM, d)
}

// StopWith is Stop with another signal, such as os.Interrupt.
func (p *Process) StopWith(sig os.Signal, d time.Duration) error {
	select {
	case <-p.done:
		return p.exited
	default:
	}
	if err := p.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-p.done:
		return p.exited
	case <-time.After(d):
		p.Kill()
		return ErrStillRunning
	}
}

// Eventually polls cond every 10 ms until it holds, and fails t with the
// message (formatted with args when it fails, so it can show the state
// then) if d passes first. Tests wait with it for the event a sleep would
// stand for.
func Eventually(t testing.TB, d time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: "+msg, append([]any{d}, args...)...)
		}
		timer := time.NewTimer(10 * time.Millisecond)
		<-timer.C
	}
}

// SyncBuffer is a bytes.Buffer that goroutines and processes may write
// while a test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
