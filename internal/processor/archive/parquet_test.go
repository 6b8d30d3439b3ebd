package archive

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/processor"
	"github.com/runnel-dev/runnel/internal/testserver"
)

// parquetGlob is every Parquet object under dir, as DuckDB reads them.
func parquetGlob(dir string) string {
	return fmt.Sprintf("read_parquet('%s/**/*.parquet', union_by_name=true, filename=true)", filepath.ToSlash(dir))
}

// describeTypes returns DuckDB's type of each column of a query.
func describeTypes(t *testing.T, from string) map[string]string {
	t.Helper()
	types := map[string]string{}
	for _, r := range testserver.DuckDB(t, "DESCRIBE SELECT * FROM "+from) {
		types[r["column_name"].(string)] = r["column_type"].(string)
	}
	return types
}

// TestArchiveParquetInferred writes Parquet with an inferred schema that
// widens as records need, in each codec, and reads it back with DuckDB:
// one row per record, none twice, the widened types, each row under its
// partition, several row groups per object.
func TestArchiveParquetInferred(t *testing.T) {
	t.Parallel()
	for _, codec := range []string{"snappy", "zstd", "gzip"} {
		t.Run(codec, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			a := newArchive(t, map[string]any{
				"dir": dir, "format": "parquet", "compression": codec, "prefixStyle": "hive",
				"partitionBy": "country", "bufferSize": "8KiB", "rowGroupSize": "1KiB",
			}, Options{})
			countries := []string{"DE", "FR", "US"}
			gen := func(i int) string {
				price := fmt.Sprintf("%d", i) // bigint at first, then double
				if i >= 150 {
					price = fmt.Sprintf("%d.5", i)
				}
				mixed := fmt.Sprintf("%d", i) // bigint, then text
				if i%50 == 49 {
					mixed = `"n/a"`
				}
				return fmt.Sprintf(`{"n":%d,"country":%q,"price":%s,"ok":%t,"tags":["a",%d],"mixed":%s,"big":123456789012345678901234}`,
					i, countries[i%3], price, i%2 == 0, i, mixed)
			}
			ctx := context.Background()
			for from := 0; from < 400; from += 50 {
				_, err := a.Invoke(ctx, events("shardId-000000000001", from, from+50, time.Now(), gen))
				require.NoError(t, err)
			}
			require.NoError(t, a.Close(ctx))
			require.Greater(t, a.Stats().Objects, int64(3))

			from := parquetGlob(dir)
			rows := testserver.DuckDB(t, "SELECT count(*) AS n, count(DISTINCT n) AS distinct_n, min(n) AS lo, max(n) AS hi, "+
				"count(*) FILTER (WHERE country <> regexp_extract(filename, 'country=([^/]+)/', 1)) AS misplaced FROM "+from)
			require.Equal(t, map[string]any{"n": 400.0, "distinct_n": 400.0, "lo": 0.0, "hi": 399.0, "misplaced": 0.0}, rows[0])

			types := describeTypes(t, from)
			require.Equal(t, "BIGINT", types["n"])
			require.Equal(t, "VARCHAR", types["country"])
			require.Equal(t, "DOUBLE", types["price"], "bigint widened to double")
			require.Equal(t, "BOOLEAN", types["ok"])
			require.Equal(t, "VARCHAR", types["tags"], "an array is kept as its JSON text")
			require.Equal(t, "VARCHAR", types["mixed"], "numbers and text widen to text")
			require.Equal(t, "VARCHAR", types["big"], "an integer past int64 is kept as text, not rounded")

			rows = testserver.DuckDB(t, "SELECT price, tags, mixed, big FROM "+from+" WHERE n IN (10, 160, 199) ORDER BY n")
			require.Equal(t, []map[string]any{
				{"price": 10.0, "tags": `["a",10]`, "mixed": "10", "big": "123456789012345678901234"},
				{"price": 160.5, "tags": `["a",160]`, "mixed": "160", "big": "123456789012345678901234"},
				{"price": 199.5, "tags": `["a",199]`, "mixed": "n/a", "big": "123456789012345678901234"},
			}, rows)

			meta := testserver.DuckDB(t, fmt.Sprintf("SELECT count(DISTINCT row_group_id) AS groups, min(compression) AS codec "+
				"FROM parquet_metadata('%s/**/*.parquet') GROUP BY file_name ORDER BY groups DESC LIMIT 1", filepath.ToSlash(dir)))
			require.Greater(t, meta[0]["groups"], 1.0, "rowGroupSize bounds row groups")
			require.Equal(t, map[string]string{"snappy": "SNAPPY", "zstd": "ZSTD", "gzip": "GZIP"}[codec], meta[0]["codec"])
		})
	}
}

// TestArchiveParquetDeclared writes the declared columns with their types;
// a record whose value does not convert goes to the error prefix with the
// reason.
func TestArchiveParquetDeclared(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := newArchive(t, map[string]any{
		"dir": dir, "format": "parquet", "compression": "zstd",
		"schema": []map[string]any{
			{"name": "n", "type": "bigint"}, {"name": "ts", "type": "timestamp"},
			{"name": "price", "type": "double"}, {"name": "user", "type": "string"}, {"name": "ok", "type": "boolean"},
		},
	}, Options{})
	gen := func(i int) string {
		switch i {
		case 7:
			return `{"n":"seven","ts":"2024-03-01T10:00:00Z"}`
		case 8:
			return `{"n":8,"ts":"yesterday"}`
		}
		return fmt.Sprintf(`{"n":%d,"ts":"2024-03-01T10:00:%02dZ","price":%d,"user":{"id":%d},"ok":true,"extra":1}`, i, i%60, i, i)
	}
	ctx := context.Background()
	_, err := a.Invoke(ctx, events("shardId-000000000000", 0, 100, time.Now(), gen))
	require.NoError(t, err)
	require.NoError(t, a.Close(ctx))
	failed := errorRecords(t, dir, "errors/")
	require.Len(t, failed, 2)
	require.Equal(t, ErrorConversion, failed[0].ErrorCode)
	require.Contains(t, failed[0].ErrorMessage, `field "n": "seven" is not a bigint`)
	require.Equal(t, `{"n":"seven","ts":"2024-03-01T10:00:00Z"}`, failed[0].data)
	require.Contains(t, failed[1].ErrorMessage, `field "ts": "yesterday" is not a timestamp`)
	require.Regexp(t, `^errors/format-conversion-failed/`, failed[1].key)

	from := parquetGlob(dir)
	types := describeTypes(t, from)
	delete(types, "filename")
	require.Equal(t, map[string]string{"n": "BIGINT", "ts": "TIMESTAMP WITH TIME ZONE", "price": "DOUBLE", "user": "VARCHAR", "ok": "BOOLEAN"}, types)
	rows := testserver.DuckDB(t, "SELECT count(*) AS n, count(DISTINCT n) AS d, max(epoch(ts)) AS last, "+
		"any_value(user) FILTER (WHERE n = 42) AS u FROM "+from)
	require.Equal(t, map[string]any{"n": 98.0, "d": 98.0, "last": float64(time.Date(2024, 3, 1, 10, 0, 59, 0, time.UTC).Unix()), "u": `{"id":42}`}, rows[0])
}

// FuzzParquetRow: a record that decodes as a JSON object always makes a
// row of the inferred schema, which reads back as one row: a record taken
// into the spool can never stop its object from being written.
func FuzzParquetRow(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":1.5,"b":"x","c":[1,{"d":null}],"e":true}`, `{"big":1e400}`, `{"n":123456789012345678901234}`, `{"":-0}`} {
		f.Add(s, `{"a":"text"}`)
	}
	f.Fuzz(func(t *testing.T, first, second string) {
		var rows []map[string]any
		var sizes []int
		for _, data := range []string{first, second} {
			fields, err := decodeRow(processor.DecodeConfig{}, []byte(data))
			if err != nil || newSchema(nil).check(fields) != nil {
				continue // the error prefix's
			}
			rows, sizes = append(rows, fields), append(sizes, len(data))
		}
		if len(rows) == 0 {
			return
		}
		cols := newSchema(nil).extend(rows)
		body, err := parquetObject(cols, rows, sizes, parquetCodec(CompressionSnappy), 1)
		if err != nil {
			t.Fatalf("rows %v, columns %v: %v", rows, cols, err)
		}
		f, err := parquet.OpenFile(bytes.NewReader(body), int64(len(body)))
		if err != nil {
			t.Fatal(err)
		}
		if f.NumRows() != int64(len(rows)) {
			t.Fatalf("%d rows read back, want %d", f.NumRows(), len(rows))
		}
	})
}

// TestArchiveParquetNoFields: with an inferred schema, a record with no
// field holding a value would make a file without columns (and rows) on
// its own; it goes to the error prefix instead.
func TestArchiveParquetNoFields(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := newArchive(t, map[string]any{"dir": dir, "format": "parquet", "prefix": "data/"}, Options{})
	data := []string{`{}`, `{"a":null}`, `{"a":1}`}
	_, err := a.Invoke(context.Background(), events("shardId-000000000000", 0, 3, time.Now(), func(i int) string { return data[i] }))
	require.NoError(t, err)
	require.NoError(t, a.Close(context.Background()))
	failed := errorRecords(t, dir, "errors/")
	require.Len(t, failed, 2)
	require.Equal(t, []string{`{}`, `{"a":null}`}, []string{failed[0].data, failed[1].data})
	require.Contains(t, failed[0].ErrorMessage, "no field with a value")
	files := objectFiles(t, filepath.Join(dir, "data"))
	require.Len(t, files, 1)
	rows, err := parquet.ReadFile[struct {
		A *int64 `parquet:"a,optional"`
	}](files[0])
	require.NoError(t, err)
	require.Len(t, rows, 1)
	require.EqualValues(t, 1, *rows[0].A)
}
