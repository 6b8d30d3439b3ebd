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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/runneltest"
	"github.com/runnel-dev/runnel/internal/sink"
)

func TestMain(m *testing.M) { runneltest.Main(m) }

// build compiles the Go program in pkgDir (relative to this package) once
// per test run and returns its path.
func build(t *testing.T, pkgDir string) string {
	t.Helper()
	return runneltest.Build(t, pkgDir)
}

// event builds a KinesisEvent of records with the given JSON payloads and
// sequence numbers 1, 2, ...
func event(payloads ...string) *lambda.KinesisEvent {
	ev := &lambda.KinesisEvent{}
	for i, p := range payloads {
		seq := fmt.Sprint(i + 1)
		ev.Records = append(ev.Records, lambda.KinesisEventRecord{
			Kinesis: lambda.KinesisRecord{
				KinesisSchemaVersion: "1.0", PartitionKey: "pk", SequenceNumber: seq,
				Data: []byte(p), ApproximateArrivalTimestamp: 1.7e9,
			},
			EventSource: "aws:kinesis", EventVersion: "1.0", EventID: "shardId-000000000000:" + seq,
			EventName: "aws:kinesis:record", AwsRegion: "us-east-1",
			EventSourceARN: "arn:aws:kinesis:us-east-1:000000000000:stream/s",
		})
	}
	return ev
}

func action(a string) *lambda.KinesisEvent { return event(`{"action":"` + a + `"}`) }

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	return strings.Fields(string(b))
}

type misbehaving struct {
	h    *Command
	pids string
	logs *runneltest.SyncBuffer
	gate string
}

func newMisbehaving(t *testing.T, mod func(*CommandConfig)) *misbehaving {
	t.Helper()
	dir := t.TempDir()
	m := &misbehaving{pids: filepath.Join(dir, "pids"), logs: &runneltest.SyncBuffer{}, gate: filepath.Join(dir, "gate")}
	cfg := CommandConfig{
		Argv:       []string{build(t, "./testdata/misbehave")},
		Env:        []string{"PID_LOG=" + m.pids, "GATE=" + m.gate},
		Timeout:    10 * time.Second,
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 2 * time.Second,
		Logger:     slog.New(slog.NewTextHandler(m.logs, nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	h, err := NewCommand(cfg)
	require.NoError(t, err)
	m.h = h
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

func (m *misbehaving) invoke(t *testing.T, a string) (*lambda.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return m.h.Invoke(ctx, action(a))
}

func TestCommandGoExample(t *testing.T) {
	bin := build(t, "../../examples/handler-go")
	testLambdaExample(t, func(cfg CommandConfig) (*Command, error) {
		cfg.Argv = []string{bin}
		return NewCommand(cfg)
	})
}

func TestCommandPythonExample(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("RUNNEL_INTEGRATION") == "required" {
			t.Fatalf("python3 not found and RUNNEL_INTEGRATION=required: %v", err)
		}
		t.Skip("python3 not found")
	}
	script, err := filepath.Abs("../../examples/handler-python/handler.py")
	require.NoError(t, err)
	testLambdaExample(t, func(cfg CommandConfig) (*Command, error) {
		cfg.Argv = []string{py, script}
		return NewCommand(cfg)
	})
}

// testLambdaExample runs one of the example handlers, which report records
// whose JSON has "fail": true and log the others to $HANDLED_LOG, with
// the handler newHandler builds from cfg.
func testLambdaExample(t *testing.T, newHandler func(cfg CommandConfig) (*Command, error)) {
	handled := filepath.Join(t.TempDir(), "handled.jsonl")
	logs := &runneltest.SyncBuffer{}
	h, err := newHandler(CommandConfig{
		Env:    []string{"HANDLED_LOG=" + handled},
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	resp, err := h.Invoke(ctx, event(`{"n":1}`, `{"n":2,"fail":true}`, `{"n":3}`, `not json`))
	require.NoError(t, err)
	require.Equal(t, []lambda.BatchItemFailure{{ItemIdentifier: "2"}, {ItemIdentifier: "4"}}, resp.BatchItemFailures)

	resp, err = h.Invoke(ctx, event(`{"n":5}`))
	require.NoError(t, err)
	require.Empty(t, resp.BatchItemFailures)

	b, err := os.ReadFile(handled)
	require.NoError(t, err)
	var got []int
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var rec struct {
			ShardID string         `json:"shardId"`
			Data    map[string]int `json:"data"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
		require.Equal(t, "shardId-000000000000", rec.ShardID)
		got = append(got, rec.Data["n"])
	}
	require.Equal(t, []int{1, 3, 5}, got, "records handled")
	// The handler's log output went to stderr and so to the logger.
	runneltest.Eventually(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), "asked to fail") },
		"handler log line not forwarded; logs:\n%s", logs)
	require.NoError(t, h.Close(ctx))
}

func TestCommandCrashRestarts(t *testing.T) {
	m := newMisbehaving(t, nil)
	_, err := m.invoke(t, "ok")
	require.NoError(t, err)
	_, err = m.invoke(t, "crash")
	require.ErrorContains(t, err, "exit status 3")
	resp, err := m.invoke(t, "fail")
	require.NoError(t, err)
	require.Equal(t, []lambda.BatchItemFailure{{ItemIdentifier: "1"}}, resp.BatchItemFailures)
	require.Len(t, readLines(t, m.pids), 2, "processes started")
	require.Contains(t, m.logs.String(), "handler process stopped")
}

func TestCommandRestartBackoff(t *testing.T) {
	m := newMisbehaving(t, func(c *CommandConfig) {
		c.MinBackoff = 100 * time.Millisecond
		c.MaxBackoff = 400 * time.Millisecond
	})
	// Three consecutive deaths: the next start waits 100, 200 then 400ms
	// (each jittered down to no less than half).
	var waits []time.Duration
	for range 4 {
		start := time.Now()
		_, err := m.invoke(t, "crash")
		require.Error(t, err)
		waits = append(waits, time.Since(start))
	}
	require.GreaterOrEqual(t, waits[1], 50*time.Millisecond)
	require.GreaterOrEqual(t, waits[2], 100*time.Millisecond)
	require.GreaterOrEqual(t, waits[3], 200*time.Millisecond)
	require.Len(t, readLines(t, m.pids), 4)
}

func TestRecordDeath(t *testing.T) {
	ms := time.Millisecond
	c := &Command{cfg: CommandConfig{MinBackoff: 100 * ms, MaxBackoff: time.Second, HealthyAfter: time.Minute}}
	s := &slot{}
	boom := errors.New("boom")
	c.recordDeath(s, time.Second, boom)
	since := s.deadSince
	c.recordDeath(s, time.Second, boom)
	require.Equal(t, 2, s.failures)
	require.Equal(t, since, s.deadSince, "consecutive deaths: one outage")
	require.ErrorIs(t, s.death, boom)
	c.recordDeath(s, 2*time.Minute, boom) // a healthy run resets the count
	require.Equal(t, 1, s.failures)
}

// TestCommandRestartWaitIsNotAFailure: while a crashed process waits out
// its restart backoff, an invocation whose deadline passes gets an error
// wrapping sink.ErrUnavailable (not delivered, not failed) and the wait is
// reported; one answered invocation resets the backoff.
func TestCommandRestartWaitIsNotAFailure(t *testing.T) {
	m := newMisbehaving(t, func(c *CommandConfig) {
		c.MinBackoff = 5 * time.Second
		c.MaxBackoff = 5 * time.Second
	})
	_, err := m.invoke(t, "crash")
	require.ErrorContains(t, err, "exit status 3")
	rep := &waits{}
	ctx, cancel := context.WithTimeout(sink.WithReporter(context.Background(), rep), 100*time.Millisecond)
	defer cancel()
	_, err = m.h.Invoke(ctx, action("ok"))
	require.ErrorIs(t, err, sink.ErrUnavailable)
	require.ErrorContains(t, err, "handler process 0 restarting")
	require.ErrorContains(t, err, "exit status 3")
	require.Len(t, rep.blocked, 1)
	require.Contains(t, rep.blocked[0].String(), "blocked since ")
	require.Len(t, readLines(t, m.pids), 1, "not restarted before the backoff")
}

type waits struct {
	mu      sync.Mutex
	blocked []sink.Wait
}

func (w *waits) Blocked(b sink.Wait) { w.mu.Lock(); w.blocked = append(w.blocked, b); w.mu.Unlock() }
func (w *waits) Unblocked()          {}

// TestCommandQueueWaitIsNotAFailure: an invocation whose deadline passes
// while every process is busy gets an error wrapping sink.ErrUnavailable,
// and one that gets a process late still has its whole timeout.
func TestCommandQueueWaitIsNotAFailure(t *testing.T) {
	m := newMisbehaving(t, func(c *CommandConfig) { c.Timeout = 20 * time.Second })
	held := make(chan error, 1)
	go func() { _, err := m.invoke(t, "wait"); held <- err }()
	runneltest.Eventually(t, 20*time.Second, func() bool { return len(readLines(t, m.pids)) == 1 }, "process did not start")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := m.h.Invoke(ctx, action("ok"))
	require.ErrorIs(t, err, sink.ErrUnavailable)
	require.ErrorContains(t, err, "all 1 busy")

	require.NoError(t, os.WriteFile(m.gate, nil, 0o644))
	require.NoError(t, <-held)
}

// TestCommandDeadlineBoundsOnlyTheWait: once a process has the event, the
// invocation runs to the handler's timeout whatever ctx's deadline says
// (that deadline may have been spent waiting for a process).
func TestCommandDeadlineBoundsOnlyTheWait(t *testing.T) {
	m := newMisbehaving(t, func(c *CommandConfig) { c.Timeout = 20 * time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := m.h.Invoke(ctx, action("wait")); done <- err }()
	<-ctx.Done()
	require.NoError(t, os.WriteFile(m.gate, nil, 0o644))
	require.NoError(t, <-done)
}

func TestCommandHangTimesOut(t *testing.T) {
	m := newMisbehaving(t, func(c *CommandConfig) { c.Timeout = 300 * time.Millisecond })
	start := time.Now()
	_, err := m.invoke(t, "hang")
	require.ErrorContains(t, err, "timed out after 300ms")
	require.Less(t, time.Since(start), 20*time.Second)
	_, err = m.invoke(t, "ok")
	require.NoError(t, err)
	require.Len(t, readLines(t, m.pids), 2)
}

func TestCommandGarbage(t *testing.T) {
	m := newMisbehaving(t, nil)
	for _, a := range []string{"garbage", "unknown-id"} {
		_, err := m.invoke(t, a)
		require.ErrorIs(t, err, lambda.ErrMalformedResponse, a)
	}
	_, err := m.invoke(t, "ok")
	require.NoError(t, err)
	// A process whose output cannot be trusted is replaced.
	require.Len(t, readLines(t, m.pids), 3)
}

func TestCommandFunctionError(t *testing.T) {
	m := newMisbehaving(t, nil)
	_, err := m.invoke(t, "error")
	var fe *FunctionError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, FunctionError{Type: "Boom", Message: "it broke"}, *fe)
	_, err = m.invoke(t, "ok")
	require.NoError(t, err)
	require.Len(t, readLines(t, m.pids), 1, "a function error keeps the process")
}

func TestCommandStderrForwarded(t *testing.T) {
	m := newMisbehaving(t, nil)
	_, err := m.invoke(t, "stderr")
	require.NoError(t, err)
	runneltest.Eventually(t, 10*time.Second, func() bool { return strings.Contains(m.logs.String(), "hello from stderr") },
		"stderr not logged; logs:\n%s", m.logs)
}

func TestCommandPool(t *testing.T) {
	m := newMisbehaving(t, func(c *CommandConfig) { c.Processes = 3 })
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := m.invoke(t, "wait")
			errs <- err
		}()
	}
	// All three are in flight at once, each in its own process.
	runneltest.Eventually(t, 20*time.Second, func() bool { return len(readLines(t, m.pids)) == 3 }, "3 processes did not start")
	require.NoError(t, os.WriteFile(m.gate, nil, 0o644))
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func TestCommandContextCancelled(t *testing.T) {
	m := newMisbehaving(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		runneltest.Eventually(t, 20*time.Second, func() bool { return len(readLines(t, m.pids)) == 1 }, "process did not start")
		cancel()
	}()
	_, err := m.h.Invoke(ctx, action("hang"))
	require.ErrorIs(t, err, context.Canceled)
	_, err = m.invoke(t, "ok")
	require.NoError(t, err)
}

func TestCommandClose(t *testing.T) {
	m := newMisbehaving(t, nil)
	_, err := m.invoke(t, "ok")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, m.h.Close(ctx))
	_, err = m.invoke(t, "ok")
	require.ErrorIs(t, err, ErrClosed)
}

func TestCommandStartFailure(t *testing.T) {
	h, err := NewCommand(CommandConfig{Argv: []string{filepath.Join(t.TempDir(), "missing")}, MinBackoff: time.Millisecond})
	require.NoError(t, err)
	_, err = h.Invoke(context.Background(), action("ok"))
	require.ErrorContains(t, err, "missing")
	require.NoError(t, h.Close(context.Background()))
}

func TestNewCommandValidates(t *testing.T) {
	_, err := NewCommand(CommandConfig{Processes: -1, Timeout: -time.Second})
	require.ErrorContains(t, err, "argv")
	require.ErrorContains(t, err, "processes")
	require.ErrorContains(t, err, "timeout")
}
