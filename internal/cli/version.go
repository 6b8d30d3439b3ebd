package cli

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func newVersionCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print runnel's version, the commit it was built from and the Go version",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, ok := debug.ReadBuildInfo()
			if !ok {
				return fmt.Errorf("this binary carries no build information")
			}
			printVersion(e.stdout, info)
			return nil
		},
	}
}

// printVersion writes the module version (a tag, a pseudo-version, or
// "(devel)" for a build from a work tree), the version control revision,
// time and whether the tree had uncommitted changes, and the Go version.
func printVersion(w io.Writer, info *debug.BuildInfo) {
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	fmt.Fprintf(w, "runnel %s\n", info.Main.Version)
	if rev := settings["vcs.revision"]; rev != "" {
		modified := ""
		if settings["vcs.modified"] == "true" {
			modified = " (with uncommitted changes)"
		}
		fmt.Fprintf(w, "commit %s%s\n", rev, modified)
	}
	if at := settings["vcs.time"]; at != "" {
		fmt.Fprintf(w, "committed %s\n", at)
	}
	fmt.Fprintf(w, "built with %s\n", info.GoVersion)
}
