package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"

	objectsink "github.com/runnel-dev/runnel/internal/sink/object"
)

// A Parquet archive keeps a table definition next to its data, under the
// archive root (names starting with _ are skipped by Athena, Hive, Spark
// and DuckDB's globs):
//
//	_table.sql         the Athena/Hive CREATE EXTERNAL TABLE statement
//	_table.duckdb.sql  the same table as a DuckDB view over read_parquet
//	_schema.json       the columns, read back at start to keep widening
//
// They are rewritten whenever the columns change. The table's location is
// the prefix up to its first placeholder; every segment after it must be
// Hive style (name=!{...}), and each name is a string partition column.

// Table definition object names.
const (
	TableFile       = "_table.sql"
	DuckDBTableFile = "_table.duckdb.sql"
	SchemaFile      = "_schema.json"
)

// Table is an archive's table: where its objects are, its columns and its
// partition columns.
type Table struct {
	Name string
	// Location is the directory (or s3:// URL) partitions start under,
	// ending in /.
	Location    string
	Columns     []Column
	Partitions  []string
	Compression string
}

// TableName makes a pipeline name a table name: lower case letters,
// digits and _.
func TableName(pipeline string) string {
	b := []byte(strings.ToLower(pipeline))
	for i, c := range b {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || '0' <= b[0] && b[0] <= '9' {
		b = append([]byte("t_"), b...)
	}
	return string(b)
}

// root is where the archive's objects go: an absolute directory or an
// s3:// URL, ending in /.
func (c Config) root() string {
	if c.S3 != nil {
		return "s3://" + c.S3.Bucket + "/" + c.S3.Prefix
	}
	dir, err := filepath.Abs(c.Dir)
	if err != nil {
		dir = c.Dir
	}
	return filepath.ToSlash(dir) + "/"
}

// layout returns the location of the table under root and its partition
// columns, from the object prefix.
func layout(p prefix, root string) (string, []string, error) {
	// Placeholders become \x01; the location ends before the first
	// segment holding one.
	var b strings.Builder
	for _, part := range p {
		if part.kind == partLiteral {
			b.WriteString(part.text)
		} else {
			b.WriteByte(1)
		}
	}
	segs := strings.Split(strings.TrimSuffix(b.String(), "/"), "/")
	i := slices.IndexFunc(segs, func(s string) bool { return strings.Contains(s, "\x01") })
	if i < 0 {
		return root + strings.Join(segs, "/") + "/", nil, nil
	}
	loc := root
	if i > 0 {
		loc += strings.Join(segs[:i], "/") + "/"
	}
	var parts []string
	for _, seg := range segs[i:] {
		name, value, ok := strings.Cut(seg, "=")
		if !ok || name == "" || strings.Contains(name, "\x01") || value == "" {
			return "", nil, fmt.Errorf("prefix segment %q is not Hive style (name=!{...}), so a table cannot name its partitions; "+
				"use e.g. dt=!{timestamp:yyyy-MM-dd}/ or prefixStyle: hive", strings.ReplaceAll(seg, "\x01", "!{...}"))
		}
		parts = append(parts, name)
	}
	return loc, parts, nil
}

// table returns the archive's table with the given columns.
func (a *Archive) table(cols []Column) (Table, error) {
	loc, parts, err := layout(a.prefix, a.cfg.root())
	if err != nil {
		return Table{}, err
	}
	return Table{Name: TableName(a.opts.Pipeline), Location: loc, Columns: cols, Partitions: parts, Compression: a.cfg.Compression}, nil
}

// dataColumns are the columns that are not also partitions (a table
// cannot have both; the partition's value is the one kept).
func (t Table) dataColumns() []Column {
	return slices.DeleteFunc(slices.Clone(t.Columns), func(c Column) bool { return slices.Contains(t.Partitions, c.Name) })
}

func hiveIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
func sqlIdent(s string) string  { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Athena returns the table's CREATE EXTERNAL TABLE statement for Athena
// and Hive, followed by the statement that loads its partitions.
func (t Table) Athena() string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE EXTERNAL TABLE IF NOT EXISTS %s (\n", hiveIdent(t.Name))
	cols := t.dataColumns()
	for i, c := range cols {
		fmt.Fprintf(&b, "  %s %s", hiveIdent(c.Name), c.Type)
		if i < len(cols)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString(")\n")
	if len(t.Partitions) > 0 {
		ps := make([]string, len(t.Partitions))
		for i, p := range t.Partitions {
			ps[i] = hiveIdent(p) + " string"
		}
		fmt.Fprintf(&b, "PARTITIONED BY (%s)\n", strings.Join(ps, ", "))
	}
	fmt.Fprintf(&b, "STORED AS PARQUET\nLOCATION %s\nTBLPROPERTIES ('parquet.compression'=%s);\n",
		sqlString(t.Location), sqlString(strings.ToUpper(t.Compression)))
	if len(t.Partitions) > 0 {
		fmt.Fprintf(&b, "MSCK REPAIR TABLE %s;\n", hiveIdent(t.Name))
	}
	return b.String()
}

var duckTypes = map[string]string{
	TypeString: "VARCHAR", TypeBigint: "BIGINT", TypeDouble: "DOUBLE", TypeBoolean: "BOOLEAN", TypeTimestamp: "TIMESTAMPTZ",
}

// DuckDB returns the table as a DuckDB view over its Parquet objects.
func (t Table) DuckDB() string {
	var sel []string
	for _, c := range t.dataColumns() {
		sel = append(sel, fmt.Sprintf("CAST(%s AS %s) AS %s", sqlIdent(c.Name), duckTypes[c.Type], sqlIdent(c.Name)))
	}
	for _, p := range t.Partitions {
		sel = append(sel, fmt.Sprintf("CAST(%s AS VARCHAR) AS %s", sqlIdent(p), sqlIdent(p)))
	}
	hive := "false"
	if len(t.Partitions) > 0 {
		hive = "true"
	}
	return fmt.Sprintf("CREATE OR REPLACE VIEW %s AS SELECT\n  %s\nFROM read_parquet(%s, hive_partitioning = %s, hive_types_autocast = false, union_by_name = true);\n",
		sqlIdent(t.Name), strings.Join(sel, ",\n  "), sqlString(t.Location+"**/*.parquet"), hive)
}

// writeTable writes the table definition when the columns changed since
// it was last written.
func (a *Archive) writeTable(ctx context.Context) error {
	a.tableMu.Lock()
	defer a.tableMu.Unlock()
	cols := a.schema.Columns()
	sig, _ := json.Marshal(cols)
	if string(sig) == a.tableWritten {
		return nil
	}
	t, err := a.table(cols)
	if err != nil {
		if a.tableWritten == "" {
			a.logger.Warn("archive: no table definition", "err", err)
			a.tableWritten = string(sig)
		}
		return nil
	}
	schema, _ := json.MarshalIndent(cols, "", "  ")
	for _, o := range []struct {
		key  string
		body string
	}{{SchemaFile, string(schema) + "\n"}, {TableFile, t.Athena()}, {DuckDBTableFile, t.DuckDB()}} {
		if err := a.store.put(ctx, o.key, []byte(o.body)); err != nil {
			return fmt.Errorf("writing the table definition: %w", err)
		}
	}
	a.tableWritten = string(sig)
	return nil
}

// loadSchema reads the columns an earlier run inferred from the schema
// file in the archive's store (a directory or a bucket), so widening goes
// on from them. A store that cannot be read is an error: starting from no
// columns would write a narrower table over the one that describes the
// data already there.
func (a *Archive) loadSchema(ctx context.Context) error {
	if a.schema.declared {
		return nil
	}
	g, ok := a.store.Store.(objectsink.Getter)
	if !ok {
		return nil
	}
	raw, err := g.Get(ctx, SchemaFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("archive: reading the inferred schema %s%s: %w", a.cfg.root(), SchemaFile, err)
	}
	var cols []Column
	if err := json.Unmarshal(raw, &cols); err != nil {
		return fmt.Errorf("archive: %s%s: %w", a.cfg.root(), SchemaFile, err)
	}
	for _, c := range cols {
		if slices.Contains(columnTypes, c.Type) {
			a.schema.cols[c.Name] = c.Type
		}
	}
	return nil
}

// TableOf returns the table of an archive configuration (as ParseConfig
// returns it) for pipeline: with its declared columns, or those the
// archive last wrote to its schema file (a directory archive).
func TableOf(cfg Config, pipeline string) (Table, error) {
	if cfg.Format != FormatParquet {
		return Table{}, errors.New("a table definition is written for format: parquet only")
	}
	a := &Archive{cfg: cfg, opts: Options{Pipeline: pipeline}, schema: newSchema(cfg.Schema)}
	if err := a.compilePrefixes(); err != nil {
		return Table{}, err
	}
	if !a.schema.declared {
		if cfg.Dir == "" {
			return Table{}, fmt.Errorf("the schema is inferred and kept in %s%s: read the table there (%s)", cfg.root(), SchemaFile, TableFile)
		}
		a.store = store{objectsink.Dir{Dir: cfg.Dir}}
		if err := a.loadSchema(context.Background()); err != nil {
			return Table{}, err
		}
		if len(a.schema.cols) == 0 {
			return Table{}, fmt.Errorf("no columns yet: the schema is inferred from the records and %s has none; run the pipeline first or declare schema", filepath.Join(cfg.Dir, SchemaFile))
		}
	}
	return a.table(a.schema.Columns())
}
