package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/runnel-dev/runnel/internal/app"
	"github.com/runnel-dev/runnel/internal/consumer"
	"github.com/runnel-dev/runnel/internal/kinesisclient"
	"github.com/runnel-dev/runnel/internal/kinesislocal"
	"github.com/runnel-dev/runnel/internal/pipeline"
)

// hosted is a server running in this process with parts beside it (its
// pipelines, the demo's generator). The parts run in one group, which also
// ends when the server stops on its own; wait lets the parts finish first
// (batches in flight are checkpointed), then stops the server.
type hosted struct {
	srv    *app.Server
	served chan error
	stop   context.CancelCauseFunc
	g      *errgroup.Group
	// ctx ends when the caller's does, a part fails or the server stops.
	ctx context.Context
}

// host starts srv and the group its parts run in.
func host(ctx context.Context, srv *app.Server) *hosted {
	serveCtx, stop := context.WithCancelCause(context.WithoutCancel(ctx))
	h := &hosted{srv: srv, served: make(chan error, 1), stop: stop}
	go func() { h.served <- srv.Run(serveCtx) }()
	h.g, h.ctx = errgroup.WithContext(ctx)
	h.g.Go(func() error {
		select {
		case err := <-h.served:
			h.served <- err
			if err == nil {
				err = errors.New("server stopped")
			}
			return err
		case <-h.ctx.Done():
			return nil
		}
	})
	return h
}

// pipelines makes the runner of cfg against the server, shown on its
// dashboard and in its metrics, with the streams it needs created. It
// runs in process: no HTTP, and empty reads wait for the next append
// instead of polling, so an idle shard costs nothing and a new record
// reaches its handler within milliseconds.
func (h *hosted) pipelines(e *env, cfg *pipeline.Config, builtins pipeline.Builtins, stateDir, region string) (*pipeline.Runner, error) {
	// Command and lambda handlers reach the server over HTTP, as a
	// client of its URL would, with the same local credentials.
	client, err := kinesisclient.New(h.ctx, kinesisclient.Options{Endpoint: h.srv.URL(), Region: region, Logger: e.logger})
	if err != nil {
		return nil, err
	}
	runner, err := pipeline.New(h.ctx, cfg, pipeline.Options{
		FunctionEnv: pipeline.FunctionEnv(h.ctx, client.Options(), e.getenv, e.logger),
		Kinesis:     kinesislocal.New(h.srv.Engine()),
		Tune:        func(c *consumer.Config) { c.PollInterval = time.Millisecond },
		Builtins:    builtins,
		StateDir:    stateDir,
		Region:      region,
		Logger:      e.logger.With("component", "pipelines"),
		Stdout:      e.stdout,
		Observer:    h.srv.PipelineObserver(),
	})
	if err != nil {
		return nil, err
	}
	h.srv.SetPipelines(runner)
	if err := runner.EnsureStreams(h.ctx); err != nil {
		_ = runner.Close(context.WithoutCancel(h.ctx))
		return nil, fmt.Errorf("pipelines: %w", err)
	}
	return runner, nil
}

// run runs runner as a part, writing its status when it stops.
func (h *hosted) run(e *env, runner *pipeline.Runner) error {
	err := runner.Run(h.ctx)
	runner.WriteStatus(e.stdout)
	return err
}

// wait waits for the parts, then stops the server, and returns every
// error.
func (h *hosted) wait() error {
	err := h.g.Wait()
	h.stop(errors.New("shutting down"))
	if serr := <-h.served; serr != nil {
		err = errors.Join(err, serr)
	}
	return err
}

// abort stops the server before the parts have started and returns why it
// could not stop cleanly, if it could not.
func (h *hosted) abort(cause error) error {
	h.stop(cause)
	_ = h.g.Wait()
	return <-h.served
}
