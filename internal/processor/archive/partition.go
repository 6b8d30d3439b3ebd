package archive

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/processor"
)

// Object keys are a prefix, evaluated per record, then the object's name.
// The prefix is written as Firehose's custom prefixes are:
//
//	events/!{timestamp:yyyy/MM/dd}/country=!{partitionKeyFromQuery:country}/
//
// !{timestamp:FORMAT} formats the record's time (timeField, else its
// arrival) with the letters of Java's DateTimeFormatter that Firehose
// documents (yyyy, yy, MM, dd, HH, mm, ss); !{partitionKeyFromQuery:NAME}
// is the value of the partition key NAME, an expression over the record's
// fields. The error prefix may use !{firehose:error-output-type}. A
// record whose keys cannot be computed, or that cannot be converted to the
// object format, goes under the error prefix as a JSON line holding its
// data (base64) and the reason, as Firehose delivers it.

// Error output types, the value of !{firehose:error-output-type}.
const (
	ErrorPartitioning = "partitioning-failed"
	ErrorConversion   = "format-conversion-failed"
)

// DefaultErrorPrefix is Config.ErrorPrefix's default.
const DefaultErrorPrefix = "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/"

// errorMark starts the spool path of error records: no prefix evaluates
// to a path with a NUL byte.
const errorMark = "\x00"

type partKind int

const (
	partLiteral partKind = iota
	partTime
	partKey
	partErrorType
)

// prefixPart is a literal, or one placeholder of a prefix.
type prefixPart struct {
	kind partKind
	text string // literal; Go time layout; key name
}

// prefix is a parsed prefix.
type prefix []prefixPart

var javaLetters = map[string]string{"yyyy": "2006", "yy": "06", "MM": "01", "dd": "02", "HH": "15", "mm": "04", "ss": "05"}

// javaLayout converts a Java DateTimeFormatter pattern to a Go layout.
func javaLayout(p string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(p); {
		c := p[i]
		if c == '\'' || c == '"' || c == '%' || c == '!' {
			return "", fmt.Errorf("%q is not supported in a timestamp pattern", c)
		}
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			b.WriteByte(c)
			i++
			continue
		}
		j := i
		for j < len(p) && p[j] == c {
			j++
		}
		layout, ok := javaLetters[p[i:j]]
		if !ok {
			return "", fmt.Errorf("%q is not one of yyyy, yy, MM, dd, HH, mm, ss", p[i:j])
		}
		b.WriteString(layout)
		i = j
	}
	return b.String(), nil
}

// parsePrefix parses a prefix; errorPrefix allows !{firehose:...}.
func parsePrefix(s string, errorPrefix bool) (prefix, error) {
	var p prefix
	rest := s
	for rest != "" {
		i := strings.Index(rest, "!{")
		if i < 0 {
			p = append(p, prefixPart{kind: partLiteral, text: rest})
			break
		}
		if i > 0 {
			p = append(p, prefixPart{kind: partLiteral, text: rest[:i]})
		}
		end := strings.IndexByte(rest[i:], '}')
		if end < 0 {
			return nil, fmt.Errorf("%q has an unclosed !{", s)
		}
		ns, arg, _ := strings.Cut(rest[i+2:i+end], ":")
		switch ns {
		case "timestamp":
			layout, err := javaLayout(arg)
			if err != nil {
				return nil, fmt.Errorf("!{timestamp:%s}: %v", arg, err)
			}
			p = append(p, prefixPart{kind: partTime, text: layout})
		case "partitionKeyFromQuery":
			if arg == "" {
				return nil, errors.New("!{partitionKeyFromQuery:} needs a key name")
			}
			p = append(p, prefixPart{kind: partKey, text: arg})
		case "firehose":
			if !errorPrefix || arg != "error-output-type" {
				return nil, fmt.Errorf("!{firehose:%s}: only !{firehose:error-output-type}, in errorPrefix, is supported (random-string would break exactly-once names)", arg)
			}
			p = append(p, prefixPart{kind: partErrorType})
		default:
			return nil, fmt.Errorf("!{%s}: the namespaces are timestamp and partitionKeyFromQuery", rest[i+2:i+end])
		}
		rest = rest[i+end+1:]
	}
	for _, part := range p {
		if part.kind == partLiteral && (strings.ContainsFunc(part.text, func(r rune) bool { return r < ' ' || r == 0x7f }) || strings.Contains(part.text, "..")) {
			return nil, fmt.Errorf("%q has a control character or ..", s)
		}
	}
	if len(p) > 0 && p[0].kind == partLiteral && strings.HasPrefix(p[0].text, "/") {
		return nil, fmt.Errorf("%q must not start with /", s)
	}
	// What is not literal text evaluates to digits, an error type or an
	// escaped, non-empty key value, so a prefix evaluated with any values
	// is safe when it is with these: no control character (a timestamp
	// pattern passes its punctuation through), no leading /, and no
	// segment that is . or .. (literal text around a timestamp).
	sample := p.eval(time.Unix(0, 0), sampleKeys(p), ErrorConversion)
	if strings.ContainsFunc(sample, func(r rune) bool { return r < ' ' || r == 0x7f }) || strings.HasPrefix(sample, "/") || !safeSegments(sample) {
		return nil, fmt.Errorf("%q makes an unsafe path (%q): a control character, a leading /, or a . or .. segment", s, sample)
	}
	return p, nil
}

// sampleKeys gives every partition key of p a value, for checking p.
func sampleKeys(p prefix) map[string]string {
	keys := map[string]string{}
	for _, k := range p.keys() {
		keys[k] = "k"
	}
	return keys
}

// safeSegments reports whether no /-separated segment of path is . or ..
func safeSegments(path string) bool {
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// keys returns the partition key names the prefix uses, in order.
func (p prefix) keys() []string {
	var out []string
	for _, part := range p {
		if part.kind == partKey && !slices.Contains(out, part.text) {
			out = append(out, part.text)
		}
	}
	return out
}

// eval returns the prefix for a record of time t and partition key
// values keys (each already a safe path segment).
func (p prefix) eval(t time.Time, keys map[string]string, errType string) string {
	var b strings.Builder
	for _, part := range p {
		switch part.kind {
		case partLiteral:
			b.WriteString(part.text)
		case partTime:
			b.WriteString(t.UTC().Format(part.text))
		case partKey:
			b.WriteString(keys[part.text])
		case partErrorType:
			b.WriteString(errType)
		}
	}
	s := b.String()
	if s != "" && !strings.HasSuffix(s, "/") {
		// Objects are named <prefix><shard>-...; keep the name apart.
		s += "/"
	}
	return s
}

// partitionKey computes one partition key value of a record.
type partitionKey struct {
	name  string
	field string      // a field's value (partitionBy)
	prog  *vm.Program // or an expression's
}

// compileKeys compiles the partition key expressions.
func compileKeys(exprs map[string]string) ([]partitionKey, error) {
	var keys []partitionKey
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(exprs)) {
		prog, err := expr.Compile(exprs[name], expr.Env(map[string]any{}), expr.AllowUndefinedVariables())
		if err != nil {
			errs = append(errs, fmt.Errorf("partitionKeys.%s: %v", name, err))
			continue
		}
		keys = append(keys, partitionKey{name: name, prog: prog})
	}
	return keys, errors.Join(errs...)
}

// value returns the key's value for an event as a path segment.
func (k partitionKey) value(ev *processor.Event, env map[string]any) (string, error) {
	if k.prog == nil {
		return escapePartition(ev.String(k.field)), nil
	}
	v, err := expr.Run(k.prog, env)
	if err != nil {
		return "", fmt.Errorf("partition key %s: %v", k.name, err)
	}
	var s string
	switch x := v.(type) {
	case nil:
		return "", fmt.Errorf("partition key %s: the expression gave nil for this record", k.name)
	case string:
		s = x
	case fmt.Stringer:
		s = x.String()
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return "", fmt.Errorf("partition key %s: %v", k.name, err)
		}
		s = string(b)
	}
	if s == "" {
		return "", fmt.Errorf("partition key %s: the expression gave an empty string for this record", k.name)
	}
	return escapePartition(s), nil
}

// errorRecord is a record under the error prefix, one JSON line, as
// Firehose writes them.
type errorRecord struct {
	ErrorCode        string `json:"errorCode"`
	ErrorMessage     string `json:"errorMessage"`
	ArrivalTimestamp int64  `json:"approximateArrivalTimestamp"`
	PartitionKey     string `json:"partitionKey"`
	SequenceNumber   string `json:"sequenceNumber"`
	SubSequence      *int64 `json:"subSequenceNumber,omitempty"`
	RawData          string `json:"rawData"`
}

// errorLine returns the error record of rec as a JSON line.
func errorLine(rec *lambda.KinesisEventRecord, code string, reason error) []byte {
	b, _ := json.Marshal(errorRecord{
		ErrorCode: code, ErrorMessage: reason.Error(),
		ArrivalTimestamp: arrival(rec.Kinesis.ApproximateArrivalTimestamp).UnixMilli(),
		PartitionKey:     rec.Kinesis.PartitionKey, SequenceNumber: rec.Kinesis.SequenceNumber,
		SubSequence: rec.Kinesis.SubSequenceNumber,
		RawData:     base64.StdEncoding.EncodeToString(rec.Kinesis.Data),
	})
	return b
}
