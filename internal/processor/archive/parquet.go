package archive

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/gzip"
	"github.com/parquet-go/parquet-go/compress/snappy"
	"github.com/parquet-go/parquet-go/compress/uncompressed"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/processor"
)

// Parquet objects hold one row per record, one column per top-level field
// of the decoded record. The columns are declared (Config.Schema) or
// inferred from the records, then widened as later records need:
//
//	bigint + double → double
//	any other mix, and objects and arrays → string (the value's JSON text)
//
// so no value is ever dropped or rounded to fit. An inferred schema only
// grows: each object gets the columns of every object before it, so the
// files of one archive read as one table. A record whose value does not
// convert to a declared column's type is not put in a row: it goes to the
// error prefix with the reason.

// Column types, as Athena, Hive and DuckDB name them.
const (
	TypeString    = "string"
	TypeBigint    = "bigint"
	TypeDouble    = "double"
	TypeBoolean   = "boolean"
	TypeTimestamp = "timestamp"
)

var columnTypes = []string{TypeString, TypeBigint, TypeDouble, TypeBoolean, TypeTimestamp}

// Column is one column of a Parquet schema.
type Column struct {
	// Name is the record's top-level field the column holds.
	Name string `yaml:"name"`
	// Type is string, bigint, double, boolean or timestamp. A timestamp
	// is read from RFC 3339 text, "2006-01-02 15:04:05" (UTC) or epoch
	// seconds (milliseconds above 1e11) and stored in microseconds, UTC.
	Type string `yaml:"type"`
}

// Compression codecs of Parquet objects.
const (
	CompressionSnappy = "snappy"
	CompressionZstd   = "zstd"
	CompressionGzip   = "gzip"
	CompressionNone   = "none"
)

func parquetCodec(name string) compress.Codec {
	switch name {
	case CompressionZstd:
		return &zstd.Codec{}
	case CompressionGzip:
		return &gzip.Codec{}
	case CompressionNone:
		return &uncompressed.Codec{}
	}
	return &snappy.Codec{}
}

// schema is the columns of an archive's Parquet objects. It is safe for
// concurrent use.
type schema struct {
	declared bool

	mu   sync.Mutex
	cols map[string]string // name → type
}

func newSchema(declared []Column) *schema {
	s := &schema{declared: len(declared) > 0, cols: make(map[string]string, len(declared))}
	for _, c := range declared {
		s.cols[c.Name] = c.Type
	}
	return s
}

// Columns returns the columns known so far, by name.
func (s *schema) Columns() []Column {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedColumns(s.cols)
}

func sortedColumns(cols map[string]string) []Column {
	out := make([]Column, 0, len(cols))
	for _, name := range slices.Sorted(maps.Keys(cols)) {
		out = append(out, Column{Name: name, Type: cols[name]})
	}
	return out
}

// check reports why a decoded record cannot be a row, or nil.
func (s *schema) check(fields map[string]any) error {
	if !s.declared {
		// An object of such records alone would have no column, and a
		// Parquet file without columns holds no rows.
		for _, v := range fields {
			if typeOf(v) != "" {
				return nil
			}
		}
		return errors.New("no field with a value to make a column of (an empty object, or only nulls)")
	}
	for name, typ := range s.cols {
		if _, err := convert(fields, name, typ); err != nil {
			return err
		}
	}
	return nil
}

// extend returns the columns of an object holding rows, growing the
// inferred schema by what they need.
func (s *schema) extend(rows []map[string]any) []Column {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.declared {
		return sortedColumns(s.cols)
	}
	for _, row := range rows {
		for name, v := range row {
			if t := typeOf(v); t != "" {
				s.cols[name] = widen(s.cols[name], t)
			}
		}
	}
	return sortedColumns(s.cols)
}

// typeOf is the column type a JSON value asks for; "" for null.
func typeOf(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case bool:
		return TypeBoolean
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return TypeBigint
		}
		if !strings.ContainsAny(x.String(), ".eE") {
			return TypeString // an integer past int64 would lose digits as a double
		}
		if f, err := strconv.ParseFloat(x.String(), 64); err != nil || math.IsInf(f, 0) {
			return TypeString // past float64's range (1e400)
		}
		return TypeDouble
	}
	return TypeString
}

// widen returns the narrowest type holding values of both types.
func widen(have, t string) string {
	switch {
	case have == "" || have == t:
		return t
	case have == TypeBigint && t == TypeDouble, have == TypeDouble && t == TypeBigint:
		return TypeDouble
	}
	return TypeString
}

// convert returns the Parquet value of the field name of a record for a
// column of type typ (null when absent).
func convert(fields map[string]any, name, typ string) (parquet.Value, error) {
	v, ok := fields[name]
	if !ok || v == nil {
		return parquet.NullValue(), nil
	}
	bad := func(want string) error {
		return fmt.Errorf("field %q: %s is not a %s", name, shortJSON(v), want)
	}
	switch typ {
	case TypeString:
		switch x := v.(type) {
		case string:
			return parquet.ByteArrayValue([]byte(x)), nil
		case json.Number:
			return parquet.ByteArrayValue([]byte(x.String())), nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			return parquet.Value{}, fmt.Errorf("field %q: %v", name, err)
		}
		return parquet.ByteArrayValue(b), nil
	case TypeBigint:
		s, ok := numberText(v)
		if !ok {
			return parquet.Value{}, bad("bigint")
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return parquet.Value{}, bad("bigint")
		}
		return parquet.Int64Value(n), nil
	case TypeDouble:
		s, ok := numberText(v)
		if !ok {
			return parquet.Value{}, bad("double")
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return parquet.Value{}, bad("double")
		}
		return parquet.DoubleValue(f), nil
	case TypeBoolean:
		switch x := v.(type) {
		case bool:
			return parquet.BooleanValue(x), nil
		case string:
			if b, err := strconv.ParseBool(x); err == nil && (x == "true" || x == "false") {
				return parquet.BooleanValue(b), nil
			}
		}
		return parquet.Value{}, bad("boolean")
	case TypeTimestamp:
		ev := processor.Event{Fields: fields}
		t, err := ev.Time(name, "")
		if err != nil {
			return parquet.Value{}, bad("timestamp")
		}
		return parquet.Int64Value(t.UnixMicro()), nil
	}
	return parquet.Value{}, fmt.Errorf("column %q: unknown type %q", name, typ)
}

func numberText(v any) (string, bool) {
	switch x := v.(type) {
	case json.Number:
		return x.String(), true
	case string:
		return strings.TrimSpace(x), true
	}
	return "", false
}

func shortJSON(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 40 {
		return string(b[:37]) + "..."
	}
	return string(b)
}

func parquetNode(typ string) parquet.Node {
	switch typ {
	case TypeBigint:
		return parquet.Optional(parquet.Int(64))
	case TypeDouble:
		return parquet.Optional(parquet.Leaf(parquet.DoubleType))
	case TypeBoolean:
		return parquet.Optional(parquet.Leaf(parquet.BooleanType))
	case TypeTimestamp:
		return parquet.Optional(parquet.Timestamp(parquet.Microsecond))
	}
	return parquet.Optional(parquet.Encoded(parquet.String(), &parquet.RLEDictionary))
}

// decodeRow decodes a record's data as a row's fields.
func decodeRow(dc processor.DecodeConfig, data []byte) (map[string]any, error) {
	ev, err := dc.Decode(&lambda.KinesisEventRecord{Kinesis: lambda.KinesisRecord{Data: data}})
	if err != nil {
		return nil, err
	}
	if ev.Fields == nil {
		return nil, errors.New("raw records have no fields to make columns of")
	}
	return ev.Fields, nil
}

// parquetObject encodes rows as a Parquet file with the given columns,
// starting a row group each rowGroupSize bytes of record data (sizes[i]
// is row i's).
func parquetObject(cols []Column, rows []map[string]any, sizes []int, codec compress.Codec, rowGroupSize int64) ([]byte, error) {
	group := make(parquet.Group, len(cols))
	for _, c := range cols {
		group[c.Name] = parquetNode(c.Type)
	}
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, parquet.NewSchema("record", group), parquet.Compression(codec),
		parquet.CreatedBy("runnel", "", ""))
	row := make(parquet.Row, len(cols))
	var groupBytes int64
	for i, fields := range rows {
		for j, c := range cols {
			v, err := convert(fields, c.Name, c.Type)
			if err != nil {
				return nil, err
			}
			if v.IsNull() {
				row[j] = v.Level(0, 0, j)
			} else {
				row[j] = v.Level(0, 1, j)
			}
		}
		if _, err := w.WriteRows([]parquet.Row{row}); err != nil {
			return nil, fmt.Errorf("writing parquet row: %w", err)
		}
		groupBytes += int64(sizes[i])
		if groupBytes >= rowGroupSize && i < len(rows)-1 {
			if err := w.Flush(); err != nil {
				return nil, fmt.Errorf("writing parquet row group: %w", err)
			}
			groupBytes = 0
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("writing parquet footer: %w", err)
	}
	return buf.Bytes(), nil
}
