package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/runnel-dev/runnel/internal/pipeline"
	"github.com/runnel-dev/runnel/internal/processor/archive"
)

func newArchiveCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "archive",
		Short: "Work with what archive pipelines write",
	}
	var duckdb bool
	ddl := &cobra.Command{
		Use:   "ddl PIPELINES.yaml PIPELINE",
		Short: "Print the table definition of a Parquet archive pipeline",
		Long: `Print the CREATE EXTERNAL TABLE statement (Athena, Hive) of an archive
pipeline writing Parquet: its columns (declared, or as the archive last wrote
them to <dir>/_schema.json), its partitions (the prefix's name=!{...}
segments) and its location. --duckdb prints the same table as a DuckDB view.
The archive also writes both next to its data (_table.sql, _table.duckdb.sql).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usagef("%s takes a pipelines file and a pipeline name", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := pipeline.Load(args[0], pipelineBuiltins())
			if err != nil {
				return err
			}
			for _, p := range cfg.Pipelines {
				if p.Name != args[1] {
					continue
				}
				if p.Handler.Type != pipeline.TypeBuiltin || p.Handler.Name != "archive" {
					return fmt.Errorf("pipeline %s does not archive (handler %s %s)", p.Name, p.Handler.Type, p.Handler.Name)
				}
				acfg, err := archive.ParseConfig(p.Handler.Options, p.Name)
				if err != nil {
					return fmt.Errorf("pipeline %s: %w", p.Name, err)
				}
				t, err := archive.TableOf(acfg, p.Name)
				if err != nil {
					return fmt.Errorf("pipeline %s: %w", p.Name, err)
				}
				if duckdb {
					fmt.Fprint(e.stdout, t.DuckDB())
				} else {
					fmt.Fprint(e.stdout, t.Athena())
				}
				return nil
			}
			return fmt.Errorf("%s has no pipeline %q", args[0], args[1])
		},
	}
	ddl.Flags().BoolVar(&duckdb, "duckdb", false, "print the table as a DuckDB view instead")
	cmd.AddCommand(ddl)
	return cmd
}
