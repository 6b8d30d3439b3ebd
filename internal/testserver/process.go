package testserver

import (
	"bytes"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// readyOutput collects a server process's output and notes the first
// match of ready: the line the server prints once it listens (and, for a
// server given port 0, the address it took). Waiting for that line rather
// than dialing the port means a port another process took meanwhile is
// never mistaken for the server's.
type readyOutput struct {
	ready *regexp.Regexp
	done  chan struct{}

	mu    sync.Mutex
	buf   bytes.Buffer
	match []string
}

func newReadyOutput(ready *regexp.Regexp) *readyOutput {
	return &readyOutput{ready: ready, done: make(chan struct{})}
}

func (o *readyOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	if o.match == nil {
		if m := o.ready.FindStringSubmatch(o.buf.String()); m != nil {
			o.match = m
			close(o.done)
		}
	}
	return len(p), nil
}

func (o *readyOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// Match is ready's match (whole and groups), nil before it appeared.
func (o *readyOutput) Match() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.match
}

// lastLines is the end of the output, for a failing test's log.
func (o *readyOutput) lastLines(n int) string {
	l := strings.Split(o.String(), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// startReady starts cmd with its output going to out and waits up to d
// for out's ready line. On success exited receives cmd's end; otherwise
// cmd has ended and the error holds its output.
func startReady(cmd *exec.Cmd, out *readyOutput, d time.Duration) (exited chan error, err error) {
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited = make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-out.done:
		return exited, nil
	case err := <-exited:
		return nil, fmt.Errorf("exited before it was ready (%v):\n%s", err, out.lastLines(40))
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-exited
		return nil, fmt.Errorf("not ready after %v:\n%s", d, out.lastLines(40))
	}
}

// killAtCleanup has t's Cleanup kill the started cmd, and log the end of
// its output if the test failed.
func killAtCleanup(t testing.TB, name string, cmd *exec.Cmd, exited chan error, out *readyOutput) {
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("%s log, last lines:\n%s", name, out.lastLines(40))
		}
	})
}
