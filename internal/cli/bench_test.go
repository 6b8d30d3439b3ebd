package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/app"
	"github.com/runnel-dev/runnel/internal/bench"
	"github.com/runnel-dev/runnel/internal/kinesistest"
)

func TestBenchCommand(t *testing.T) {
	t.Parallel()
	srv := kinesistest.Start(t)
	var stdout, stderr bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }, serve: app.Run}
	code := e.main(t.Context(), []string{"bench", "--endpoint", srv.URL, "--shards", "2", "--clients", "2", "--records-per-call", "50", "--total", "300", "--json"})
	require.Equal(t, exitOK, code, stderr.String())
	var res bench.Result
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &res))
	require.True(t, res.Verified)
	require.EqualValues(t, 300, res.Put.Records)
	require.EqualValues(t, 300, res.Get.Records)
	require.EqualValues(t, 6, res.Put.Calls)

	code, msg := runClient(t, "bench", "--endpoint", srv.URL, "extra")
	require.Equal(t, exitUsage, code, msg)
	code, msg = runClient(t, "bench", "--endpoint", srv.URL, "--records-per-call", "501")
	require.Equal(t, exitError, code, msg)
	require.Contains(t, msg, "records per call must be 1..500")
}
