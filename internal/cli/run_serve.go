package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/runnel-dev/runnel/internal/app"
	"github.com/runnel-dev/runnel/internal/consumer"
	"github.com/runnel-dev/runnel/internal/kinesislocal"
	"github.com/runnel-dev/runnel/internal/pipeline"
)

// serveWithPipelines runs the server and, against it, the pipelines of
// file, with leases and checkpoints in <data-dir>/pipelines. On shutdown
// the pipelines stop first (batches in flight finish and are
// checkpointed), then the server.
func (e *env) serveWithPipelines(ctx context.Context, cfg app.Config, file string) error {
	builtins := pipelineBuiltins()
	pcfg, err := pipeline.Load(file, builtins)
	if err != nil {
		return &usageError{err}
	}
	srv, err := app.New(ctx, cfg, e.logger)
	if err != nil {
		return err
	}
	serveCtx, stopServer := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopServer(nil)
	served := make(chan error, 1)
	go func() { served <- srv.Run(serveCtx) }()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		// The server stopping on its own ends the pipelines too.
		select {
		case err := <-served:
			served <- err
			if err == nil {
				err = errors.New("server stopped")
			}
			return err
		case <-gctx.Done():
			return nil
		}
	})
	g.Go(func() error {
		// In-process: no HTTP, and empty reads wait for the next append
		// instead of polling, so an idle shard costs nothing and a new
		// record reaches its handler within milliseconds.
		client := kinesislocal.New(srv.Engine())
		runner, err := pipeline.New(gctx, pcfg, pipeline.Options{
			Kinesis:  client,
			Tune:     func(c *consumer.Config) { c.PollInterval = time.Millisecond },
			Builtins: builtins,
			StateDir: filepath.Join(cfg.DataDir, "pipelines"),
			Region:   cfg.Region,
			Logger:   e.logger.With("component", "pipelines"),
			Stdout:   e.stdout,
			Observer: srv.PipelineObserver(),
		})
		if err != nil {
			return err
		}
		srv.SetPipelines(runner)
		if err := runner.EnsureStreams(gctx); err != nil {
			_ = runner.Close(context.WithoutCancel(gctx))
			return fmt.Errorf("pipelines: %w", err)
		}
		err = runner.Run(gctx)
		runner.WriteStatus(e.stdout)
		return err
	})
	err = g.Wait()
	stopServer(errors.New("shutting down"))
	if serr := <-served; serr != nil {
		err = errors.Join(err, serr)
	}
	return err
}
