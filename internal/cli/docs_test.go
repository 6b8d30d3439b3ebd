package cli

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var updateReadme = flag.Bool("update-readme", false, "rewrite the README's built-in processor options from runnel config docs")

const (
	docsBegin = "<!-- begin runnel config docs -->\n"
	docsEnd   = "<!-- end runnel config docs -->\n"
)

// TestReadmeOptionsAreGenerated checks that the README's option tables
// are what `runnel config docs` prints, so they cannot drift from the
// specs that decode the options. go test ./internal/cli -run
// TestReadmeOptions -update-readme rewrites them.
func TestReadmeOptionsAreGenerated(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := runCLI(t, "config", "docs")
	require.Equal(t, 0, code, stderr)
	for name := range pipelineBuiltins() {
		require.Contains(t, stdout, "#### "+name+"\n")
	}
	require.Contains(t, stdout, "| `redis.tls.caFile` | string |")

	const readme = "../../README.md"
	b, err := os.ReadFile(readme)
	require.NoError(t, err)
	before, rest, ok := strings.Cut(string(b), docsBegin)
	require.True(t, ok, "the README lacks %q", docsBegin)
	_, after, ok := strings.Cut(rest, docsEnd)
	require.True(t, ok, "the README lacks %q", docsEnd)
	want := before + docsBegin + "\n" + stdout + "\n" + docsEnd + after
	if *updateReadme {
		require.NoError(t, os.WriteFile(readme, []byte(want), 0o644))
		return
	}
	require.Equal(t, want, string(b), "the README's options differ from runnel config docs; run go test ./internal/cli -run TestReadmeOptions -update-readme")
}
