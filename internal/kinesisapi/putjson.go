package kinesisapi

import (
	"bytes"
	"slices"
	"unicode/utf8"

	asmbase64 "github.com/segmentio/asm/base64"

	"github.com/runnel-dev/runnel/internal/bufpool"
)

// PutRecords and PutRecord are the hot write path, and encoding/json's
// reflection, its second pass over the body and one allocation per member
// were most of their cost. Their bodies are decoded here by hand, in one
// pass, into a few allocations per request: every record's data shares one
// buffer and every key one string.
//
// The hand decoder takes only the plain form every SDK sends: members
// spelled exactly, once each, strings without escapes. For anything else
// (a malformed body, a member of the wrong type, an escape, a key that
// differs from a member's name only in case, a repeated member) it declines
// and the body goes through encoding/json, which gives the exact answer,
// error or not. FuzzDecodePutRecords checks that whatever the hand decoder
// accepts, encoding/json decodes to the same request.

// fastJSONDecoder is a request with a hand-written decoder for the plain
// form of its body. decodeFastJSON reports false, leaving the request
// zero, when the body is not in that form.
type fastJSONDecoder interface {
	decodeFastJSON(body []byte) bool
}

var (
	_ fastJSONDecoder = (*putRecordsRequest)(nil)
	_ fastJSONDecoder = (*putRecordRequest)(nil)
)

// maxSkipDepth bounds the nesting of an unknown member's value that the
// hand decoder skips; deeper documents go through encoding/json.
const maxSkipDepth = 32

// plainScanner reads the plain JSON the hand decoders accept. Every method
// reports false for anything else.
type plainScanner struct {
	b []byte
	i int
}

func (s *plainScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next skips white space and consumes c.
func (s *plainScanner) next(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// peek skips white space and returns the next byte (0 at the end).
func (s *plainScanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// null consumes the literal null.
func (s *plainScanner) null() bool {
	if bytes.HasPrefix(s.b[s.i:], []byte("null")) {
		s.i += 4
		return true
	}
	return false
}

// str reads a string without escapes or control characters, in valid
// UTF-8, and returns its bytes (aliasing the body).
func (s *plainScanner) str() ([]byte, bool) {
	if s.peek() != '"' {
		return nil, false
	}
	start := s.i + 1
	ascii := true
	for j := start; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			v := s.b[start:j]
			s.i = j + 1
			if !ascii && !utf8.Valid(v) {
				return nil, false
			}
			return v, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= 0x80:
			ascii = false
		}
	}
	return nil, false
}

// key reads a member name and the colon after it. A name with anything
// but printable ASCII is refused: encoding/json matches some non-ASCII
// letters to ASCII ones ("ſ" to "s").
func (s *plainScanner) key() ([]byte, bool) {
	k, ok := s.str()
	if !ok || !s.next(':') {
		return nil, false
	}
	for _, c := range k {
		if c >= 0x80 {
			return nil, false
		}
	}
	return k, true
}

// optStr reads a string member's value: nil for null.
func (s *plainScanner) optStr() (*string, bool) {
	if s.peek() == 'n' {
		return nil, s.null()
	}
	v, ok := s.str()
	if !ok {
		return nil, false
	}
	str := string(v)
	return &str, true
}

// skip consumes one value of any type.
func (s *plainScanner) skip(depth int) bool {
	if depth > maxSkipDepth {
		return false
	}
	switch c := s.peek(); {
	case c == '"':
		_, ok := s.str()
		return ok
	case c == '{':
		return s.object(nil, func([]byte) (bool, bool) { return true, s.skip(depth + 1) })
	case c == '[':
		s.i++
		if s.next(']') {
			return true
		}
		for {
			if !s.skip(depth + 1) {
				return false
			}
			if s.next(']') {
				return true
			}
			if !s.next(',') {
				return false
			}
		}
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.null()
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	return false
}

func (s *plainScanner) literal(lit string) bool {
	if bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		s.i += len(lit)
		return true
	}
	return false
}

// number consumes a JSON number.
func (s *plainScanner) number() bool {
	b := s.b
	i := s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return false
		}
		i = j
	}
	s.i = i
	return true
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// end reports whether only white space is left.
func (s *plainScanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}

// object walks the members of an object, calling member with each name;
// member consumes the value and reports false to decline. A name that
// member does not know (known false) has its value skipped, unless it
// matches one of names ignoring case, as encoding/json would match it.
func (s *plainScanner) object(names []string, member func(name []byte) (known, ok bool)) bool {
	if !s.next('{') {
		return false
	}
	if s.next('}') {
		return true
	}
	for {
		k, ok := s.key()
		if !ok {
			return false
		}
		known, ok := member(k)
		if !ok {
			return false
		}
		if !known {
			for _, n := range names {
				if bytes.EqualFold(k, []byte(n)) {
					return false
				}
			}
			if !s.skip(1) {
				return false
			}
		}
		if s.next('}') {
			return true
		}
		if !s.next(',') {
			return false
		}
	}
}

// blobArena holds the decoded data of one request's records.
type blobArena struct{ buf []byte }

// blob reads a base64 string member's value into the arena; has is false
// for null.
func (s *plainScanner) blob(a *blobArena) (d blob, has, ok bool) {
	switch s.peek() {
	case 'n':
		return nil, false, s.null()
	case '"':
	default:
		return nil, false, false
	}
	n := bytes.IndexByte(s.b[s.i+1:], '"')
	if n < 0 {
		return nil, false, false
	}
	text := s.b[s.i+1 : s.i+1+n]
	s.i += n + 2
	// Base64 skips line breaks, which a JSON string may not hold raw: a
	// text whose decoded length is short of its full length held some,
	// and goes to encoding/json to be refused.
	if len(text)%4 != 0 {
		return nil, false, false
	}
	want := len(text) / 4 * 3
	if n := len(text); n > 0 && text[n-1] == '=' {
		want--
		if text[n-2] == '=' {
			want--
		}
	}
	if a.buf == nil || cap(a.buf)-len(a.buf) < want {
		a.buf = make([]byte, 0, max(want, 2*cap(a.buf)))
	}
	off := len(a.buf)
	got, err := b64.Decode(a.buf[off:off+want], text)
	if err != nil || got != want {
		return nil, false, false
	}
	a.buf = a.buf[:off+want]
	return blob(a.buf[off : off+want : off+want]), true, true
}

// newBlobArena sizes an arena for the data of a body: base64 is never
// shorter than the bytes it encodes by less than a quarter.
func newBlobArena(body []byte) *blobArena {
	n := len(body)/4*3 + 3
	if b := arenaBufs.Get(); cap(b) >= n {
		return &blobArena{buf: b}
	}
	return &blobArena{buf: make([]byte, 0, n)}
}

// arenaBufs holds arena buffers, of up to 8 MiB, between requests: the
// data of a PutRecords of 500 records of 100 bytes is 50 KB.
var arenaBufs = bufpool.New(8 << 20)

// release gives the arena's buffer to a later request. Nothing may read
// the data decoded into it after: a put releases it once the store holds
// a copy of every record.
func (a *blobArena) release() {
	if a == nil {
		return
	}
	arenaBufs.Put(a.buf)
	a.buf = nil
}

var putRecordsNames = []string{"StreamName", "StreamARN", "Records"}

func (r *putRecordsRequest) decodeFastJSON(body []byte) bool {
	s := plainScanner{b: body}
	arena := newBlobArena(body)
	var seen [3]bool
	ok := s.object(putRecordsNames, func(name []byte) (bool, bool) {
		var ok bool
		switch string(name) {
		case "StreamName":
			r.StreamName, ok = s.optStr()
			return true, ok && !once(&seen[0])
		case "StreamARN":
			r.StreamARN, ok = s.optStr()
			return true, ok && !once(&seen[1])
		case "Records":
			r.Records, r.more, r.moreBad, ok = s.putRecordsEntries(arena)
			return true, ok && !once(&seen[2])
		}
		return false, true
	})
	if !ok || !s.end() {
		*r = putRecordsRequest{}
		return false
	}
	r.arena = arena
	return true
}

// once marks a member seen and reports whether it had been already.
func once(seen *bool) bool {
	was := *seen
	*seen = true
	return was
}

// entryFields are one PutRecords entry's members as read, before the
// request's strings are made.
type entryFields struct {
	data                     blob
	key, hash                [2]int // offsets in the key buffer
	hasData, hasKey, hasHash bool
}

var putRecordsEntryNames = []string{"Data", "PartitionKey", "ExplicitHashKey"}

// putRecordsEntries reads the Records list: null, or a list of objects.
// The keys of every entry share one string. It keeps the first
// maxPutRecords entries; past them (a request refused for its length) it
// only counts the entries in more and keeps in moreBad the first few that
// break a rule, so a long body costs no more than a refusal needs.
func (s *plainScanner) putRecordsEntries(arena *blobArena) (entries []putRecordsEntry, more int, moreBad []numberedEntry, ok bool) {
	switch s.peek() {
	case 'n':
		return nil, 0, nil, s.null()
	case '[':
		s.i++
	default:
		return nil, 0, nil, false
	}
	// Base64 has no braces: the count bounds the entries of a valid body.
	n := min(bytes.Count(s.b[s.i:], []byte("{")), maxPutRecords)
	fields := make([]entryFields, 0, n)
	keys := make([]byte, 0, 32*n)
	var lateKeys []byte
	if !s.next(']') {
		for {
			var f entryFields
			var seen [3]bool
			kept := len(fields) < maxPutRecords
			buf := &keys
			if !kept {
				lateKeys = lateKeys[:0]
				buf = &lateKeys
			}
			ok := s.object(putRecordsEntryNames, func(name []byte) (bool, bool) {
				switch string(name) {
				case "Data":
					var ok bool
					f.data, f.hasData, ok = s.blob(arena)
					return true, ok && !once(&seen[0])
				case "PartitionKey":
					ok := s.keyInto(buf, &f.key, &f.hasKey)
					return true, ok && !once(&seen[1])
				case "ExplicitHashKey":
					ok := s.keyInto(buf, &f.hash, &f.hasHash)
					return true, ok && !once(&seen[2])
				}
				return false, true
			})
			if !ok {
				return nil, 0, nil, false
			}
			if kept {
				fields = append(fields, f)
			} else {
				if len(moreBad) < maxViolations {
					if e := f.entry(string(lateKeys)); !e.plain() {
						moreBad = append(moreBad, numberedEntry{at: len(fields) + more, rec: e})
					}
				}
				more++
			}
			if s.next(']') {
				break
			}
			if !s.next(',') {
				return nil, 0, nil, false
			}
		}
	}
	all := string(keys)
	strs := make([]string, 0, 2*len(fields))
	datas := make([]blob, len(fields))
	entries = make([]putRecordsEntry, len(fields))
	for i, f := range fields {
		if f.hasData {
			datas[i] = f.data
			entries[i].Data = &datas[i]
		}
		if f.hasKey {
			strs = append(strs, all[f.key[0]:f.key[1]])
			entries[i].PartitionKey = &strs[len(strs)-1]
		}
		if f.hasHash {
			strs = append(strs, all[f.hash[0]:f.hash[1]])
			entries[i].ExplicitHashKey = &strs[len(strs)-1]
		}
	}
	return entries, more, moreBad, true
}

// entry is the entry f reads, its keys in all.
func (f *entryFields) entry(all string) putRecordsEntry {
	var e putRecordsEntry
	if f.hasData {
		d := f.data
		e.Data = &d
	}
	if f.hasKey {
		k := all[f.key[0]:f.key[1]]
		e.PartitionKey = &k
	}
	if f.hasHash {
		h := all[f.hash[0]:f.hash[1]]
		e.ExplicitHashKey = &h
	}
	return e
}

// keyInto reads a string member's value (null leaves has false) into buf,
// noting where it lies.
func (s *plainScanner) keyInto(buf *[]byte, at *[2]int, has *bool) bool {
	if s.peek() == 'n' {
		*has = false
		return s.null()
	}
	v, ok := s.str()
	if !ok {
		return false
	}
	at[0] = len(*buf)
	*buf = append(*buf, v...)
	at[1] = len(*buf)
	*has = true
	return true
}

var putRecordNames = []string{"StreamName", "StreamARN", "Data", "PartitionKey", "ExplicitHashKey", "SequenceNumberForOrdering"}

func (r *putRecordRequest) decodeFastJSON(body []byte) bool {
	s := plainScanner{b: body}
	var seen [6]bool
	strs := [6]**string{&r.StreamName, &r.StreamARN, nil, &r.PartitionKey, &r.ExplicitHashKey, &r.SequenceNumberForOrdering}
	ok := s.object(putRecordNames, func(name []byte) (bool, bool) {
		i := slices.Index(putRecordNames, string(name))
		if i < 0 {
			return false, true
		}
		var ok bool
		if strs[i] != nil {
			*strs[i], ok = s.optStr()
		} else {
			var d blob
			var has bool
			// One record: an arena of its own, sized by blob.
			if d, has, ok = s.blob(&blobArena{}); has {
				r.Data = &d
			}
		}
		return true, ok && !once(&seen[i])
	})
	if !ok || !s.end() {
		*r = putRecordRequest{}
		return false
	}
	return true
}

// b64 is standard base64 (as encoding/base64's StdEncoding, which it
// falls back to for what it does not take in whole blocks of vector
// instructions): the data of records is most of what PutRecords and
// GetRecords carry, and it codes that data several times as fast.
var b64 = asmbase64.StdEncoding

// appendBase64 appends data in standard base64.
func appendBase64(b, data []byte) []byte {
	n := b64.EncodedLen(len(data))
	b = slices.Grow(b, n)
	b64.Encode(b[len(b):len(b)+n], data)
	return b[:len(b)+n]
}
