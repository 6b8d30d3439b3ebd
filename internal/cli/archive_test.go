package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestArchiveDDL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	lake := filepath.Join(dir, "lake")
	file := filepath.Join(dir, "pipelines.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`pipelines:
  - name: lake
    source: clicks
    handler:
      type: builtin
      name: archive
      options:
        dir: `+lake+`
        format: parquet
        prefixStyle: hive
        schema: [{name: user, type: string}, {name: ts, type: timestamp}, {name: n, type: bigint}]
  - name: inferred
    source: clicks
    handler: {type: builtin, name: archive, options: {dir: `+lake+`2, format: parquet}}
  - name: lines
    source: clicks
    handler: {type: builtin, name: archive, options: {dir: `+lake+`3}}
`), 0o644))

	code, stdout, stderr := runCLI(t, "archive", "ddl", file, "lake")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "CREATE EXTERNAL TABLE IF NOT EXISTS `lake` (\n  `n` bigint,\n  `ts` timestamp,\n  `user` string\n)\n"+
		"PARTITIONED BY (`dt` string, `hour` string)\nSTORED AS PARQUET\nLOCATION '"+filepath.ToSlash(lake)+"/'\n"+
		"TBLPROPERTIES ('parquet.compression'='SNAPPY');\nMSCK REPAIR TABLE `lake`;\n", stdout)

	code, stdout, stderr = runCLI(t, "archive", "ddl", "--duckdb", file, "lake")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, `CREATE OR REPLACE VIEW "lake" AS SELECT`)
	require.Contains(t, stdout, `CAST("ts" AS TIMESTAMPTZ) AS "ts"`)

	code, _, stderr = runCLI(t, "archive", "ddl", file, "inferred")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "no columns yet")
	code, _, stderr = runCLI(t, "archive", "ddl", file, "lines")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "format: parquet only")
	code, _, stderr = runCLI(t, "archive", "ddl", file, "nope")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `has no pipeline "nope"`)
}
