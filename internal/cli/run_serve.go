package cli

import (
	"context"
	"path/filepath"

	"github.com/runnel-dev/runnel/internal/app"
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
	h := host(ctx, srv)
	h.g.Go(func() error {
		runner, err := h.pipelines(e, pcfg, builtins, filepath.Join(cfg.DataDir, "pipelines"), cfg.Region)
		if err != nil {
			return err
		}
		return h.run(e, runner)
	})
	return h.wait()
}
