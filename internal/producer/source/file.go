package source

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/runnel-dev/runnel/internal/producer"
)

// Format is a file format File reads.
type Format string

// The formats File reads.
const (
	CSV   Format = "csv"
	TSV   Format = "tsv"
	JSONL Format = "jsonl"
)

// ParseFormat accepts "csv", "tsv" and "jsonl" (or "json", "ndjson").
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "csv":
		return CSV, nil
	case "tsv", "tab":
		return TSV, nil
	case "jsonl", "json", "ndjson":
		return JSONL, nil
	}
	return "", fmt.Errorf("format %q: want csv, tsv or jsonl", s)
}

// DetectFormat tells the format from a file name's extension, ignoring a
// trailing .gz: .csv, .tsv or .tab, .jsonl, .ndjson or .json.
func DetectFormat(path string) (Format, error) {
	name := strings.TrimSuffix(strings.ToLower(path), ".gz")
	ext := strings.TrimPrefix(filepath.Ext(name), ".")
	f, err := ParseFormat(ext)
	if err != nil || ext == "" {
		return "", fmt.Errorf("cannot tell the format of %s from its extension; give --format csv, tsv or jsonl", path)
	}
	return f, nil
}

// FileConfig configures a File.
type FileConfig struct {
	// Path is the file to read; "-" reads Stdin.
	Path  string
	Stdin io.Reader
	// Format is the file's format; "" detects it from Path's extension
	// (and is JSONL for standard input).
	Format Format
	// Fields names the columns of a CSV or TSV file. Without it the first
	// row names them; with it a first row is still skipped as a header
	// unless NoHeader is set. With NoHeader and no Fields the columns are
	// named col1, col2, ...
	Fields   []string
	NoHeader bool
	// Key is the field whose value becomes the partition key; "" gives
	// every record a random UUID.
	Key string
	// SkipBad skips a malformed line (wrong column count, bad JSON, no key)
	// after passing it to OnBad; otherwise reading stops with its error.
	SkipBad bool
	OnBad   func(*LineError)
	// Loop starts over at the end of the file. Not for standard input.
	Loop bool
}

// LineError is a malformed line of a file.
type LineError struct {
	File string
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// File is a Source of the lines of a TSV, CSV or JSON-lines file, gunzipped
// when it is gzip-compressed. Each CSV or TSV row becomes a JSON object
// {"<field>":"<value>",...} with the values as strings, in column order; each
// JSON line is sent as it is. Blank lines are ignored.
type File struct {
	cfg    FileConfig
	name   string
	format Format
	fields []string
	keyCol int // index of Key among fields; -1 when none

	closer io.Closer
	lines  *bufio.Reader // TSV and JSONL
	csv    *csv.Reader
	lineNo int
	pass   int
	read   int // records yielded in this pass

	// Skipped counts the malformed lines skipped.
	Skipped int64
}

var _ Source = (*File)(nil)

// OpenFile opens cfg.Path and reads its header.
func OpenFile(cfg FileConfig) (*File, error) {
	f := &File{cfg: cfg, name: cfg.Path, format: cfg.Format, keyCol: -1}
	if cfg.Path == "-" {
		f.name = "standard input"
		if cfg.Loop {
			return nil, errors.New("cannot loop over standard input")
		}
		if f.format == "" {
			f.format = JSONL
		}
	} else if f.format == "" {
		var err error
		if f.format, err = DetectFormat(cfg.Path); err != nil {
			return nil, err
		}
	}
	if err := f.open(); err != nil {
		return nil, err
	}
	return f, nil
}

// open (re)opens the input and reads the header.
func (f *File) open() error {
	var r io.Reader
	if f.cfg.Path == "-" {
		r = f.cfg.Stdin
		f.closer = io.NopCloser(nil)
	} else {
		file, err := os.Open(f.cfg.Path)
		if err != nil {
			return err
		}
		r, f.closer = file, file
	}
	br := bufio.NewReaderSize(r, 256<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			_ = f.closer.Close()
			return fmt.Errorf("%s: %w", f.name, err)
		}
		br = bufio.NewReaderSize(zr, 256<<10)
	}
	f.lineNo, f.read = 0, 0
	f.pass++
	switch f.format {
	case JSONL:
		f.lines = br
		if f.cfg.Key != "" {
			f.keyCol = 0
		}
		return nil
	case CSV:
		f.csv = csv.NewReader(br)
		f.csv.FieldsPerRecord = -1
		f.csv.ReuseRecord = true
	case TSV:
		f.lines = br
	default:
		return fmt.Errorf("unknown format %q", f.format)
	}
	var header []string
	if !f.cfg.NoHeader {
		row, line, err := f.row()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: empty file: no header row", f.name)
		}
		if err != nil {
			return err
		}
		if f.pass == 1 && line > 0 {
			header = append([]string(nil), row...)
		}
	}
	if f.pass > 1 {
		return nil
	}
	switch {
	case len(f.cfg.Fields) > 0:
		f.fields = f.cfg.Fields
	case header != nil:
		f.fields = header
	}
	return f.checkFields()
}

// checkFields validates the field names and finds the key column.
func (f *File) checkFields() error {
	if f.fields == nil {
		return nil // named col1..colN from the first row
	}
	seen := make(map[string]bool, len(f.fields))
	for i, name := range f.fields {
		if name == "" {
			return fmt.Errorf("%s: column %d has no name", f.name, i+1)
		}
		if seen[name] {
			return fmt.Errorf("%s: column name %q appears twice", f.name, name)
		}
		seen[name] = true
		if name == f.cfg.Key {
			f.keyCol = i
		}
	}
	if f.cfg.Key != "" && f.keyCol < 0 {
		return fmt.Errorf("%s: key field %q is not a column (columns: %s)", f.name, f.cfg.Key, strings.Join(f.fields, ", "))
	}
	return nil
}

// row reads the next non-blank CSV or TSV row and its line number.
func (f *File) row() ([]string, int, error) {
	for {
		if f.csv != nil {
			rec, err := f.csv.Read()
			if err != nil {
				var pe *csv.ParseError
				if errors.As(err, &pe) {
					f.lineNo = pe.StartLine
					return nil, pe.StartLine, &LineError{File: f.name, Line: pe.StartLine, Err: pe.Err}
				}
				return nil, 0, err
			}
			line, _ := f.csv.FieldPos(0)
			f.lineNo = line
			if len(rec) == 1 && rec[0] == "" {
				continue
			}
			return rec, line, nil
		}
		b, err := f.line()
		if err != nil {
			return nil, 0, err
		}
		if len(b) == 0 {
			continue
		}
		return strings.Split(string(b), "\t"), f.lineNo, nil
	}
}

// line reads the next line without its line ending.
func (f *File) line() ([]byte, error) {
	b, err := f.lines.ReadBytes('\n')
	if len(b) == 0 && err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("reading %s: %w", f.name, err)
	}
	f.lineNo++
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	return b, nil
}

// Next returns the next line's record. A malformed line returns a
// *LineError, or is skipped when SkipBad is set.
func (f *File) Next(ctx context.Context) (producer.Record, error) {
	for {
		if err := ctx.Err(); err != nil {
			return producer.Record{}, context.Cause(ctx)
		}
		rec, err := f.next()
		var le *LineError
		if errors.As(err, &le) && f.cfg.SkipBad {
			f.Skipped++
			if f.cfg.OnBad != nil {
				f.cfg.OnBad(le)
			}
			continue
		}
		if errors.Is(err, io.EOF) && f.cfg.Loop {
			if f.read == 0 {
				return producer.Record{}, fmt.Errorf("%s: no records to loop over", f.name)
			}
			if err := f.closer.Close(); err != nil {
				return producer.Record{}, err
			}
			if err := f.open(); err != nil {
				return producer.Record{}, err
			}
			continue
		}
		if err == nil {
			f.read++
		}
		return rec, err
	}
}

func (f *File) next() (producer.Record, error) {
	if f.format == JSONL {
		for {
			b, err := f.line()
			if err != nil {
				return producer.Record{}, err
			}
			if len(bytes.TrimSpace(b)) == 0 {
				continue
			}
			return f.jsonRecord(b)
		}
	}
	row, line, err := f.row()
	if err != nil {
		return producer.Record{}, err
	}
	if f.fields == nil {
		f.fields = make([]string, len(row))
		for i := range row {
			f.fields[i] = "col" + strconv.Itoa(i+1)
		}
		if err := f.checkFields(); err != nil {
			return producer.Record{}, err
		}
	}
	if len(row) != len(f.fields) {
		return producer.Record{}, &LineError{File: f.name, Line: line, Err: fmt.Errorf("%d columns, want %d (%s)", len(row), len(f.fields), strings.Join(f.fields, ", "))}
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, v := range row {
		if i > 0 {
			buf.WriteByte(',')
		}
		writeJSONString(&buf, f.fields[i])
		buf.WriteByte(':')
		writeJSONString(&buf, v)
	}
	buf.WriteByte('}')
	key := NewUUID()
	if f.keyCol >= 0 {
		if key = row[f.keyCol]; key == "" {
			return producer.Record{}, &LineError{File: f.name, Line: line, Err: fmt.Errorf("key field %q is empty", f.cfg.Key)}
		}
	}
	return producer.Record{PartitionKey: key, Data: buf.Bytes()}, nil
}

func (f *File) jsonRecord(b []byte) (producer.Record, error) {
	data := bytes.Clone(bytes.TrimSpace(b))
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		return producer.Record{}, &LineError{File: f.name, Line: f.lineNo, Err: fmt.Errorf("bad JSON: %v", err)}
	}
	if f.cfg.Key == "" {
		return producer.Record{PartitionKey: NewUUID(), Data: data}, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return producer.Record{}, &LineError{File: f.name, Line: f.lineNo, Err: fmt.Errorf("not a JSON object, so it has no key field %q", f.cfg.Key)}
	}
	raw, ok := obj[f.cfg.Key]
	if !ok || string(raw) == "null" {
		return producer.Record{}, &LineError{File: f.name, Line: f.lineNo, Err: fmt.Errorf("no key field %q", f.cfg.Key)}
	}
	key := string(raw)
	var s string
	if json.Unmarshal(raw, &s) == nil {
		key = s
	}
	if key == "" {
		return producer.Record{}, &LineError{File: f.name, Line: f.lineNo, Err: fmt.Errorf("key field %q is empty", f.cfg.Key)}
	}
	return producer.Record{PartitionKey: key, Data: data}, nil
}

// Close closes the file.
func (f *File) Close() error { return f.closer.Close() }

func writeJSONString(buf *bytes.Buffer, s string) {
	b, _ := json.Marshal(s) // a string always encodes
	buf.Write(b)
}
