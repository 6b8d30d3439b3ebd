// Package processor holds runnel's built-in processors (count, window,
// table, archive, forward) and what they share: turning a Kinesis record of
// a Lambda event into an Event with fields.
package processor

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/options"
)

// Formats a record's data may be decoded from.
const (
	FormatJSON = "json" // one JSON object per record (the default)
	FormatCSV  = "csv"  // one delimited line with declared Columns
	FormatText = "text" // UTF-8 text, available as the field "text"
	FormatRaw  = "raw"  // bytes as they are; no fields
)

// DecodeField is the decode option of every processor that reads
// record fields, decoded into a DecodeConfig.
var DecodeField = options.Field{Name: "decode", Doc: "How record data is decoded.", Fields: []options.Field{
	{Name: "format", Default: FormatJSON, Enum: []string{FormatJSON, FormatCSV, FormatText, FormatRaw},
		Doc: "The data's format: json is an object, csv a line of fields named by columns, text one field `text`, raw no fields."},
	{Name: "columns", Doc: "The names of a CSV line's fields, in order; required with csv."},
	{Name: "delimiter", DefaultDoc: "`,`", Doc: "What separates CSV fields: one character; `\\t` or `tab` reads TSV."},
}}

// DecodeConfig says how record data is decoded.
type DecodeConfig struct {
	// Format is one of FormatJSON (default), FormatCSV, FormatText,
	// FormatRaw.
	Format string `json:"format" yaml:"format"`
	// Columns names the fields of a CSV line, in order. Required for CSV.
	Columns []string `json:"columns" yaml:"columns"`
	// Delimiter separates CSV fields; default ",". "\t" reads TSV.
	Delimiter string `json:"delimiter" yaml:"delimiter"`
	// Paths, when set, limits JSON decoding to these dotted field paths:
	// only they appear in Fields, and the rest of the object is checked
	// for validity but not built, which is several times faster. A
	// processor sets it to the fields it reads.
	Paths []string `json:"-" yaml:"-"`
}

// Validate reports every problem of the configuration.
func (c DecodeConfig) Validate() error {
	var errs []error
	switch c.Format {
	case "", FormatJSON, FormatText, FormatRaw:
		if len(c.Columns) > 0 {
			errs = append(errs, options.Errorf("decode.columns", "only the csv format takes columns"))
		}
	case FormatCSV:
		if len(c.Columns) == 0 {
			errs = append(errs, options.Errorf("decode.columns", "the csv format needs the column names"))
		}
		if d := c.delimiter(); d == utf8.RuneError || d == '"' || d == '\n' || d == '\r' {
			errs = append(errs, options.Errorf("decode.delimiter", "%q cannot separate fields", c.Delimiter))
		}
	default:
		errs = append(errs, options.Errorf("decode.format", "must be json, csv, text or raw, got %q", c.Format))
	}
	return errors.Join(errs...)
}

func (c DecodeConfig) delimiter() rune {
	switch c.Delimiter {
	case "":
		return ','
	case `\t`, "\t", "tab":
		return '\t'
	}
	r, n := utf8.DecodeRuneInString(c.Delimiter)
	if n != len(c.Delimiter) {
		return utf8.RuneError
	}
	return r
}

// Event is one decoded record.
type Event struct {
	// Record is the record as the handler received it.
	Record *lambda.KinesisEventRecord
	// Fields are the JSON object's members, the CSV columns (as strings) or
	// {"text": ...}; nil for raw data.
	Fields map[string]any
	// ShardID and SequenceNumber locate the record (from its eventID).
	ShardID        string
	SequenceNumber string
	// Arrival is the record's approximate arrival time.
	Arrival time.Time
}

// ErrDecode marks a record whose data does not decode as configured.
var ErrDecode = errors.New("record does not decode")

// Decode decodes one record. A failure wraps ErrDecode and says why.
func (c DecodeConfig) Decode(rec *lambda.KinesisEventRecord) (*Event, error) {
	shard, seq, _ := strings.Cut(rec.EventID, ":")
	if seq == "" {
		seq = rec.Kinesis.SequenceNumber
	}
	sec, frac := math.Modf(rec.Kinesis.ApproximateArrivalTimestamp)
	ev := &Event{
		Record: rec, ShardID: shard, SequenceNumber: seq,
		Arrival: time.Unix(int64(sec), int64(math.Round(frac*1e3))*1e6).UTC(),
	}
	data := rec.Kinesis.Data
	switch c.Format {
	case "", FormatJSON:
		if len(c.Paths) > 0 {
			fields, err := decodePaths(data, c.Paths)
			if err != nil {
				return nil, err
			}
			ev.Fields = fields
			break
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var fields map[string]any
		if err := dec.Decode(&fields); err != nil {
			return nil, fmt.Errorf("%w: not a JSON object: %v", ErrDecode, err)
		}
		if fields == nil {
			return nil, fmt.Errorf("%w: not a JSON object: null", ErrDecode)
		}
		if dec.More() {
			return nil, fmt.Errorf("%w: more than one JSON value", ErrDecode)
		}
		ev.Fields = fields
	case FormatCSV:
		r := csv.NewReader(bytes.NewReader(bytes.TrimRight(data, "\r\n")))
		r.Comma = c.delimiter()
		r.FieldsPerRecord = len(c.Columns)
		r.LazyQuotes = true
		row, err := r.Read()
		if err != nil {
			return nil, fmt.Errorf("%w: not a line of %d %s-separated fields: %v", ErrDecode, len(c.Columns), strconv.QuoteRune(r.Comma), err)
		}
		ev.Fields = make(map[string]any, len(row))
		for i, col := range c.Columns {
			ev.Fields[col] = row[i]
		}
	case FormatText:
		if !utf8.Valid(data) {
			return nil, fmt.Errorf("%w: not UTF-8 text", ErrDecode)
		}
		ev.Fields = map[string]any{"text": string(data)}
	case FormatRaw:
	default:
		return nil, fmt.Errorf("%w: unknown format %q", ErrDecode, c.Format)
	}
	return ev, nil
}

// Lookup returns the value at a dotted path of fields ("user.country").
func (e *Event) Lookup(path string) (any, bool) {
	var cur any = e.Fields
	for part := range strings.SplitSeq(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// String returns the field at path as text ("" when absent or null):
// strings as they are, numbers in their JSON form, other values as JSON.
func (e *Event) String(path string) string {
	v, ok := e.Lookup(path)
	if !ok || v == nil {
		return ""
	}
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// Number returns the field at path as a float64, from a JSON number or a
// numeric string.
func (e *Event) Number(path string) (float64, error) {
	v, ok := e.Lookup(path)
	if !ok || v == nil {
		return 0, fmt.Errorf("field %q is missing", path)
	}
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
	default:
		return 0, fmt.Errorf("field %q is not a number", path)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("field %q is not a number: %q", path, s)
	}
	return f, nil
}

// Time returns the event time at path: with a layout, parsed with it;
// otherwise RFC 3339 (with or without fraction), "2006-01-02 15:04:05[.000]"
// (UTC), or a number of epoch seconds (or milliseconds when above 1e11).
// An empty path means the arrival time.
func (e *Event) Time(path, layout string) (time.Time, error) {
	if path == "" {
		return e.Arrival, nil
	}
	v, ok := e.Lookup(path)
	if !ok || v == nil {
		return time.Time{}, fmt.Errorf("time field %q is missing", path)
	}
	if n, isNum := v.(json.Number); isNum {
		f, err := n.Float64()
		if err != nil {
			return time.Time{}, fmt.Errorf("time field %q: %v", path, err)
		}
		return epoch(f), nil
	}
	s, isStr := v.(string)
	if !isStr {
		return time.Time{}, fmt.Errorf("time field %q is neither a string nor a number", path)
	}
	if layout != "" {
		t, err := time.Parse(layout, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("time field %q: %v", path, err)
		}
		return t.UTC(), nil
	}
	for _, l := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return epoch(f), nil
	}
	return time.Time{}, fmt.Errorf("time field %q: %q is not a time (RFC 3339, \"2006-01-02 15:04:05\" or epoch seconds)", path, s)
}

func epoch(f float64) time.Time {
	if math.Abs(f) > 1e11 {
		return time.UnixMilli(int64(f)).UTC()
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC()
}

// pathTrees caches the tree of each distinct Paths list.
var pathTrees sync.Map // paths joined by "\x00" → *pathNode

// pathNode is one key of the dotted paths: leaf when the whole value at it
// is wanted, otherwise only its children are.
type pathNode struct {
	leaf     bool
	children map[string]*pathNode
}

func pathTree(paths []string) *pathNode {
	id := strings.Join(paths, "\x00")
	if n, ok := pathTrees.Load(id); ok {
		return n.(*pathNode)
	}
	root := &pathNode{children: map[string]*pathNode{}}
	for _, p := range paths {
		n := root
		for part := range strings.SplitSeq(p, ".") {
			c, ok := n.children[part]
			if !ok {
				c = &pathNode{children: map[string]*pathNode{}}
				n.children[part] = c
			}
			n = c
		}
		n.leaf = true
	}
	pathTrees.Store(id, root)
	return root
}

// decodePaths checks data is one JSON object and decodes only the members
// at paths. It follows encoding/json's rules, so a path reads the same
// value either way: of duplicate keys the last wins, replacing the whole
// value, objects included.
func decodePaths(data []byte, paths []string) (map[string]any, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' || !json.Valid(data) {
		return nil, fmt.Errorf("%w: not a JSON object", ErrDecode)
	}
	fields, err := decodeObject(data, pathTree(paths))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecode, err)
	}
	return fields, nil
}

// decodeObject decodes the members of the object data that node asks for.
// data is one valid JSON object (decodePaths checked it), so the scan
// below only finds where each member's key and value start and end.
func decodeObject(data []byte, node *pathNode) (map[string]any, error) {
	fields := make(map[string]any, len(node.children))
	i := skipSpace(data, 1) // past '{'
	for i < len(data) && data[i] != '}' {
		keyEnd := skipString(data, i)
		key := data[i+1 : keyEnd-1]
		i = skipSpace(data, skipSpace(data, keyEnd)+1) // past ':'
		valEnd := skipValue(data, i)
		value := data[i:valEnd]
		i = skipSpace(data, valEnd)
		if i < len(data) && data[i] == ',' {
			i = skipSpace(data, i+1)
		}
		if bytes.IndexByte(key, '\\') >= 0 {
			var unescaped string
			if err := json.Unmarshal(data[keyEnd-len(key)-2:keyEnd], &unescaped); err != nil {
				return nil, err
			}
			key = []byte(unescaped)
		}
		child, ok := node.children[string(key)] // no allocation
		if !ok {
			continue
		}
		name := string(key)
		var v any
		var err error
		switch {
		case child.leaf:
			v, err = decodeValue(value)
		case value[0] == '{':
			v, err = decodeObject(value, child)
		default:
			// Not an object: no path goes through it, and it replaces
			// any earlier member of the same name.
			delete(fields, name)
			continue
		}
		if err != nil {
			return nil, err
		}
		fields[name] = v
	}
	return fields, nil
}

// skipSpace returns the index of the first byte at or after i that is
// not JSON white space.
func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at i.
func skipString(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(data)
}

// skipValue returns the index just past the value starting at i.
func skipValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for ; i < len(data); i++ {
			switch data[i] {
			case '"':
				i = skipString(data, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(data)
	}
	for i < len(data) && !strings.ContainsRune(",}] \t\n\r", rune(data[i])) {
		i++
	}
	return i
}

// decodeValue decodes one JSON value as encoding/json does into an any,
// with numbers as json.Number.
func decodeValue(value []byte) (any, error) {
	switch value[0] {
	case '"':
		value = value[1 : len(value)-1]
		if bytes.IndexByte(value, '\\') < 0 && utf8.Valid(value) {
			return string(value), nil
		}
		// Escapes and invalid UTF-8 (replaced by U+FFFD) as encoding/json
		// has them.
		var s string
		err := json.Unmarshal(append(append([]byte{'"'}, value...), '"'), &s)
		return s, err
	case 't', 'f':
		return value[0] == 't', nil
	case 'n':
		return nil, nil
	case '{', '[':
	default:
		return json.Number(value), nil
	}
	// An object or array.
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}
