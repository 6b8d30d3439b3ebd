// Package pipelinetest runs a pipelines file in-process, for tests of
// built-in processors and commands against a real stream server.
package pipelinetest

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/runnel-dev/runnel/internal/consumer"
	"github.com/runnel-dev/runnel/internal/pipeline"
)

// Running is a pipelines file being run.
type Running struct {
	*pipeline.Runner
	// Dir holds pipelines.yaml; relative paths in it (an on-failure
	// file) are under Dir.
	Dir string

	stopOnce sync.Once
	cancel   context.CancelFunc
	ran      chan error
}

// Start writes yml as pipelines.yaml in a new temporary directory and runs
// it against client (polling every 20ms) until Stop or the end of the
// test. The runner's WARN and ERROR lines go to the test log.
func Start(t *testing.T, client *kinesis.Client, yml string, builtins pipeline.Builtins) *Running {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "pipelines.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := pipeline.Load(path, builtins)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r, err := pipeline.New(ctx, cfg, pipeline.Options{
		Kinesis:  client,
		Builtins: builtins,
		StateDir: filepath.Join(dir, "state"),
		Logger:   slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Tune: func(c *consumer.Config) {
			c.PollInterval = 20 * time.Millisecond
			c.TakeInterval = 100 * time.Millisecond
		},
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := r.EnsureStreams(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	run := &Running{Runner: r, Dir: dir, cancel: cancel, ran: make(chan error, 1)}
	go func() { run.ran <- r.Run(ctx) }()
	t.Cleanup(func() { run.Stop(t) })
	return run
}

// Stop stops the pipelines and waits (at most a minute) for them to
// finish. Calling it again does nothing.
func (r *Running) Stop(t *testing.T) {
	t.Helper()
	r.stopOnce.Do(func() {
		r.cancel()
		select {
		case err := <-r.ran:
			if err != nil {
				t.Errorf("pipelines: %v", err)
			}
		case <-time.After(time.Minute):
			t.Error("pipelines did not stop within a minute")
		}
	})
}

// Blocked returns what the shards that wait for an unavailable target
// say, and how long the longest has waited.
func (r *Running) Blocked() ([]string, time.Duration) {
	var out []string
	var longest time.Duration
	for _, ps := range r.Status() {
		for _, s := range ps.Worker.Shards {
			if s.Blocked != "" {
				out = append(out, s.Blocked)
				longest = max(longest, time.Since(s.BlockedSince))
			}
		}
	}
	return out, longest
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
