package dashboard

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/pipeline"
)

// The remote store: a process is stale after three missed reports,
// forgotten later, dropped on its final report; it keeps the key it first
// reported with; and it holds at most maxProcesses processes.
func TestRemoteProcesses(t *testing.T) {
	var rm remote
	t0 := time.Now()
	rep := pipeline.ProcessReport{Process: "a", IntervalSeconds: 1, Pipelines: []pipeline.PipelineStatus{{Name: "p", Source: "s"}}}
	require.NoError(t, rm.put(rep, "K1", t0))
	require.False(t, rm.processes(t0.Add(2 * time.Second))[0].info(t0.Add(2*time.Second)).Stale)
	require.True(t, rm.processes(t0.Add(4 * time.Second))[0].info(t0.Add(4*time.Second)).Stale)
	require.Empty(t, rm.processes(t0.Add(forgetAfter+2*time.Second)), "forgotten")

	require.NoError(t, rm.put(rep, "K1", t0))
	require.ErrorContains(t, rm.put(rep, "K2", t0), "another access key")
	final := rep
	final.Final = true
	require.NoError(t, rm.put(final, "K1", t0))
	require.Empty(t, rm.processes(t0))

	for i := range maxProcesses {
		require.NoError(t, rm.put(pipeline.ProcessReport{Process: fmt.Sprint(i), IntervalSeconds: 1}, "", t0))
	}
	require.ErrorIs(t, rm.put(pipeline.ProcessReport{Process: "one-too-many", IntervalSeconds: 1}, "", t0), errTooManyProcesses)
	require.NoError(t, rm.put(pipeline.ProcessReport{Process: "one-too-many", IntervalSeconds: 1}, "", t0.Add(forgetAfter+2*time.Second)),
		"room again once the quiet ones are forgotten")
}
