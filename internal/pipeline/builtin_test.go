package pipeline

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/lambda"
)

type ctxKey struct{}

// A built-in processor is built with the runner's context, so its setup
// (connecting, creating clients) ends when the caller gives up.
// (It is not kept: the processor lives until the runner closes it.)
func TestBuiltinNewGetsTheRunnersContext(t *testing.T) {
	t.Parallel()
	srv := kinesistest.Start(t)
	var seen []any
	builtins := Builtins{"probe": {Doc: "sees its context", New: func(ctx context.Context, _ BuiltinEnv) (lambda.Handler, error) {
		seen = append(seen, ctx.Value(ctxKey{}))
		return rec0{}, nil
	}}}
	src := []byte("pipelines:\n  - {name: p, source: s, handler: {type: builtin, name: probe}}\n")
	cfg, err := Parse(filepath.Join(t.TempDir(), "pipelines.yaml"), src, builtins)
	require.NoError(t, err)

	ctx := context.WithValue(t.Context(), ctxKey{}, "runner")
	r, err := New(ctx, cfg, Options{Kinesis: srv.Client(t), Builtins: builtins, StateDir: t.TempDir()})
	require.NoError(t, err)
	r.Close(t.Context())
	require.Equal(t, []any{"runner"}, seen)

}

type rec0 struct{}

func (rec0) Invoke(context.Context, *lambda.KinesisEvent) (*lambda.Response, error) {
	return &lambda.Response{}, nil
}
