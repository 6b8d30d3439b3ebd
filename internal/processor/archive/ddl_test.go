package archive

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/testserver"
)

// TestArchiveTableDefinition: a Parquet archive writes its table next to
// the data; DuckDB runs the table's view and reads every record back under
// its partitions, with the columns' types. The Athena statement names the
// same columns and partitions. A restart keeps widening from the schema
// written before.
func TestArchiveTableDefinition(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	options := map[string]any{
		"dir": dir, "format": "parquet", "timeField": "ts", "compression": "zstd",
		"prefix":        "events/region=!{partitionKeyFromQuery:region}/dt=!{timestamp:yyyy-MM-dd}/",
		"partitionKeys": map[string]any{"region": "lower(country)"},
	}
	run := func(from, to int, gen func(i int) string) {
		cfg, err := ParseConfig(options, "lake")
		require.NoError(t, err)
		a, err := New(context.Background(), cfg, Options{Pipeline: "Click-Lake"})
		require.NoError(t, err)
		_, err = a.Invoke(context.Background(), events("shardId-000000000000", from, to, time.Now(), gen))
		require.NoError(t, err)
		require.NoError(t, a.Close(context.Background()))
	}
	countries := []string{"DE", "FR", "US"}
	run(0, 90, func(i int) string {
		return fmt.Sprintf(`{"n":%d,"country":%q,"ts":"2024-03-0%dT10:00:00Z","price":%d}`, i, countries[i%3], 1+i%2, i)
	})
	// A later run: price widens to double from the schema written before.
	run(90, 120, func(i int) string {
		return fmt.Sprintf(`{"n":%d,"country":%q,"ts":"2024-03-0%dT10:00:00Z","price":%d.25,"ok":true}`, i, countries[i%3], 1+i%2, i)
	})

	athena, err := os.ReadFile(filepath.Join(dir, TableFile))
	require.NoError(t, err)
	loc := filepath.ToSlash(dir) + "/events/"
	require.Equal(t, "CREATE EXTERNAL TABLE IF NOT EXISTS `click_lake` (\n"+
		"  `country` string,\n  `n` bigint,\n  `ok` boolean,\n  `price` double,\n  `ts` string\n)\n"+
		"PARTITIONED BY (`region` string, `dt` string)\nSTORED AS PARQUET\nLOCATION '"+loc+"'\n"+
		"TBLPROPERTIES ('parquet.compression'='ZSTD');\nMSCK REPAIR TABLE `click_lake`;\n", string(athena))

	view, err := os.ReadFile(filepath.Join(dir, DuckDBTableFile))
	require.NoError(t, err)
	rows := testserver.DuckDB(t, "SELECT region, dt, count(*) AS n, count(DISTINCT n) AS d, sum(price) AS total FROM click_lake GROUP BY ALL ORDER BY ALL", string(view))
	want := map[string][2]float64{}
	for i := range 120 {
		key := fmt.Sprintf("%s 2024-03-0%d", map[string]string{"DE": "de", "FR": "fr", "US": "us"}[countries[i%3]], 1+i%2)
		price := float64(i)
		if i >= 90 {
			price += 0.25
		}
		w := want[key]
		want[key] = [2]float64{w[0] + 1, w[1] + price}
	}
	got := map[string][2]float64{}
	for _, r := range rows {
		require.Equal(t, r["n"], r["d"], "no record twice")
		got[fmt.Sprintf("%s %s", r["region"], r["dt"])] = [2]float64{r["n"].(float64), r["total"].(float64)}
	}
	require.Equal(t, want, got)
	types := map[string]string{}
	for _, r := range testserver.DuckDB(t, "DESCRIBE click_lake", string(view)) {
		types[r["column_name"].(string)] = r["column_type"].(string)
	}
	require.Equal(t, map[string]string{"country": "VARCHAR", "n": "BIGINT", "ok": "BOOLEAN", "price": "DOUBLE", "ts": "VARCHAR",
		"region": "VARCHAR", "dt": "VARCHAR"}, types)

	// The command's source: the same table from the configuration.
	cfg, err := ParseConfig(options, "lake")
	require.NoError(t, err)
	tbl, err := TableOf(cfg, "Click-Lake")
	require.NoError(t, err)
	require.Equal(t, string(athena), tbl.Athena())
	require.Equal(t, string(view), tbl.DuckDB())
}

func TestTableLayout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		prefix, loc string
		parts       []string
		err         string
	}{
		{"dt=!{timestamp:yyyy-MM-dd}/hour=!{timestamp:HH}/", "/r/", []string{"dt", "hour"}, ""},
		{"a/b/k=!{partitionKeyFromQuery:k}/", "/r/a/b/", []string{"k"}, ""},
		{"a/b/", "/r/a/b/", nil, ""},
		{"!{timestamp:yyyy/MM/dd}/", "", nil, "is not Hive style"},
		{"a/x!{partitionKeyFromQuery:k}/", "", nil, "is not Hive style"},
	} {
		p, err := parsePrefix(tc.prefix, false)
		require.NoError(t, err)
		loc, parts, err := layout(p, "/r/")
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err, tc.prefix)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.loc, loc, tc.prefix)
		require.Equal(t, tc.parts, parts, tc.prefix)
	}
}
