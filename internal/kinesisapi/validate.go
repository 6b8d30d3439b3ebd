package kinesisapi

import (
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Patterns from the Kinesis API reference.
var (
	namePattern      = regexp.MustCompile(`^[a-zA-Z0-9_.-]+$`)
	arnPattern       = regexp.MustCompile(`^arn:aws.*:kinesis:.*:\d{12}:stream/\S+$`)
	hashKeyPattern   = regexp.MustCompile(`^(0|[1-9]\d{0,38})$`)
	sequencePattern  = regexp.MustCompile(`^(0|[1-9]\d{0,128})$`)
	maxHashKey       = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))
	namePatternText  = "[a-zA-Z0-9_.-]+"
	arnPatternText   = `arn:aws.*:kinesis:.*:\d{12}:stream/\S+`
	hashPatternText  = `0|([1-9]\d{0,38})`
	seqPatternText   = `0|([1-9]\d{0,128})`
	maxStreamNameLen = 128
	maxShardIDLen    = 128
	maxARNLen        = 2048
)

// strRule describes the shape constraints of one string member.
type strRule struct {
	required    bool
	min, max    int // in characters; max 0 means unbounded
	pattern     *regexp.Regexp
	patternText string
}

var (
	streamNameRule = strRule{min: 1, max: maxStreamNameLen, pattern: namePattern, patternText: namePatternText}
	streamARNRule  = strRule{min: 1, max: maxARNLen, pattern: arnPattern, patternText: arnPatternText}
	// requiredARNRule is for actions that name their stream by ARN alone.
	requiredARNRule = strRule{required: true, min: 1, max: maxARNLen, pattern: arnPattern, patternText: arnPatternText}
	shardIDRule     = strRule{min: 1, max: maxShardIDLen, pattern: namePattern, patternText: namePatternText}
	tagKeyRule      = strRule{min: 1, max: 128}
	sequenceRule    = strRule{pattern: sequencePattern, patternText: seqPatternText}
)

// str checks s (nil when absent) against r, naming it field.
func (v *violations) str(field string, s *string, r strRule) {
	if s == nil {
		if r.required {
			v.null(field)
		}
		return
	}
	n := utf8.RuneCountInString(*s)
	if r.max > 0 && n > r.max {
		v.add(*s, field, fmt.Sprintf("Member must have length less than or equal to %d", r.max))
	}
	if n < r.min {
		v.add(*s, field, fmt.Sprintf("Member must have length greater than or equal to %d", r.min))
	}
	if r.pattern != nil && !r.pattern.MatchString(*s) {
		v.add(*s, field, "Member must satisfy regular expression pattern: "+r.patternText)
	}
}

// intRange checks n (nil when absent) lies in [lo, hi].
func (v *violations) intRange(field string, n *int, required bool, lo, hi int) {
	if n == nil {
		if required {
			v.null(field)
		}
		return
	}
	if *n > hi {
		v.add(*n, field, fmt.Sprintf("Member must have value less than or equal to %d", hi))
	}
	if *n < lo {
		v.add(*n, field, fmt.Sprintf("Member must have value greater than or equal to %d", lo))
	}
}

// enum checks s (nil when absent) is one of allowed.
func (v *violations) enum(field string, s *string, required bool, allowed ...string) {
	if s == nil {
		if required {
			v.null(field)
		}
		return
	}
	for _, a := range allowed {
		if *s == a {
			return
		}
	}
	v.add(*s, field, "Member must satisfy enum value set: ["+strings.Join(allowed, ", ")+"]")
}

// count checks a list or map of n entries has between lo and hi entries.
func (v *violations) count(field string, shown any, n int, present, required bool, lo, hi int) {
	if !present {
		if required {
			v.null(field)
		}
		return
	}
	if n > hi {
		v.add(shown, field, fmt.Sprintf("Member must have length less than or equal to %d", hi))
	}
	if n < lo {
		v.add(shown, field, fmt.Sprintf("Member must have length greater than or equal to %d", lo))
	}
}

// streamRef is how every stream-scoped action names its stream: by name, by
// ARN, or both.
type streamRef struct {
	StreamName *string `json:"StreamName"`
	StreamARN  *string `json:"StreamARN"`
}

func (r *streamRef) check(v *violations) {
	v.str("streamName", r.StreamName, streamNameRule)
	v.str("streamARN", r.StreamARN, streamARNRule)
}

// validate checks a request that carries nothing but its stream.
func (r *streamRef) validate() error {
	var v violations
	r.check(&v)
	if err := v.err(); err != nil {
		return err
	}
	return r.require()
}

// require reports a request that names no stream at all.
func (r *streamRef) require() error {
	if r.StreamName == nil && r.StreamARN == nil {
		return invalidArgument("Either StreamName or StreamARN must be specified.")
	}
	return nil
}

// checkHashKey reports an ExplicitHashKey outside [0, 2^128-1]; the pattern
// has already been checked.
func checkHashKey(key string) error {
	if plainHashKey(key) {
		return nil
	}
	n, ok := new(big.Int).SetString(key, 10)
	if !ok || n.Sign() < 0 || n.Cmp(maxHashKey) > 0 {
		return invalidArgument("Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was %s", key)
	}
	return nil
}

// maxHashKeyText is 2^128-1 in decimal.
const maxHashKeyText = "340282366920938463463374607431768211455"

// plainHashKey reports, without allocating, whether key is a hash key in
// decimal without leading zeros, within [0, 2^128-1]: one that satisfies
// both the pattern and the range.
func plainHashKey(key string) bool {
	if len(key) == 0 || len(key) > len(maxHashKeyText) || len(key) > 1 && key[0] == '0' {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < '0' || key[i] > '9' {
			return false
		}
	}
	return len(key) < len(maxHashKeyText) || key <= maxHashKeyText
}

// normalizeShardID reads a shard id as Kinesis does: by its number alone
// ("7") or with the prefix but not the zero padding ("shardId-7"), both
// meaning shardId-000000000007. Any other id (nil, a name the stream cannot
// have) is returned as it is, to be not found.
func normalizeShardID(id *string) *string {
	if id == nil {
		return nil
	}
	digits := strings.TrimPrefix(*id, shardIDPrefix)
	if digits == "" || len(digits) > 12 || strings.Trim(digits, "0123456789") != "" {
		return id
	}
	n, err := strconv.ParseUint(digits, 10, 31)
	if err != nil {
		return id
	}
	norm := fmt.Sprintf("%s%012d", shardIDPrefix, n)
	return &norm
}

// shardIDPrefix begins every shard id.
const shardIDPrefix = "shardId-"

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
