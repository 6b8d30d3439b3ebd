package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/runnel-dev/runnel/internal/seqnum"
)

// The spool keeps, per shard, the records the archive has acknowledged but
// not yet written as objects. Each partition path of a shard has one open
// segment file that batches are appended to and fsynced before the batch
// is acknowledged. A segment that is due (by size or age) is sealed by
// renaming it; a sealed segment never changes, so the object cut from it
// has the same name and content however often it is written: a crash
// between writing the object and deleting the segment writes the same
// object again.
//
// Segment file layout:
//
//	header: "RNLSPL1\n" uvarint(len(path)) path uvarint(created unix ms)
//	frame:  uvarint(len(payload)) crc32c(payload) (4 bytes LE) payload
//	payload: uvarint(len(seq)) seq varint(subsequence, -1 for none) data
//
// A frame torn by a crash fails its length or checksum; the file is cut
// there when it is opened again. A torn frame was never acknowledged, so
// the runtime delivers its record again.
//
// A batch may touch several segments, and a crash may come after some of
// them were written. So once every segment of a batch is synced, the
// position of its last record is appended to the shard's commit log (a
// file of the same format, path "", frames without data) and synced: only
// then is the batch acknowledged. On recovery, records of open segments
// beyond the last committed position are cut off (they belong to a batch
// that was not acknowledged and will be delivered again), and records at
// or below it are recognised as spooled when delivered again.

const segMagic = "RNLSPL1\n"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// position is a record's place in its shard: sequence number and, for a
// record de-aggregated from a KPL aggregate, its sub-sequence number
// (-1 otherwise).
type position struct {
	seq string
	sub int64
}

// less compares positions of one shard (seqnum.Compare: either form of
// runnel's numbers, other decimals as integers).
func (p position) less(q position) bool {
	if c := seqnum.Compare(p.seq, q.seq); c != 0 {
		return c < 0
	}
	return p.sub < q.sub
}

func (p position) String() string {
	if p.sub < 0 {
		return p.seq
	}
	return fmt.Sprintf("%s_%d", p.seq, p.sub)
}

func parsePosition(s string) (position, error) {
	seq, sub, found := strings.Cut(s, "_")
	p := position{seq: seq, sub: -1}
	if seq == "" || strings.Trim(seq, "0123456789") != "" {
		return p, fmt.Errorf("bad position %q", s)
	}
	if found {
		if _, err := fmt.Sscan(sub, &p.sub); err != nil {
			return p, fmt.Errorf("bad position %q", s)
		}
	}
	return p, nil
}

// spoolRecord is one record in a segment.
type spoolRecord struct {
	pos  position
	data []byte
}

// appendFrame appends r's frame to buf.
func appendFrame(buf []byte, r spoolRecord) []byte {
	payloadLen := binary.PutUvarint(make([]byte, binary.MaxVarintLen64), uint64(len(r.pos.seq))) + len(r.pos.seq) +
		binary.PutVarint(make([]byte, binary.MaxVarintLen64), r.pos.sub) + len(r.data)
	buf = binary.AppendUvarint(buf, uint64(payloadLen))
	crcAt := len(buf)
	buf = append(buf, 0, 0, 0, 0)
	start := len(buf)
	buf = binary.AppendUvarint(buf, uint64(len(r.pos.seq)))
	buf = append(buf, r.pos.seq...)
	buf = binary.AppendVarint(buf, r.pos.sub)
	buf = append(buf, r.data...)
	binary.LittleEndian.PutUint32(buf[crcAt:], crc32.Checksum(buf[start:], castagnoli))
	return buf
}

func segmentHeader(path string, created time.Time) []byte {
	b := []byte(segMagic)
	b = binary.AppendUvarint(b, uint64(len(path)))
	b = append(b, path...)
	return binary.AppendUvarint(b, uint64(created.UnixMilli()))
}

// segmentContent is what a segment file holds.
type segmentContent struct {
	path    string
	created time.Time
	records []spoolRecord
	// ends[i] is the file offset just past records[i].
	ends []int64
	// good is the length of the file's intact prefix.
	good int64
}

// errBadHeader marks a segment whose header is incomplete: it was being
// created at a crash and holds nothing acknowledged.
var errBadHeader = errors.New("segment header incomplete")

// readSegment reads a segment file, stopping at the first torn frame.
func readSegment(name string) (*segmentContent, error) {
	raw, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	r := bytes.NewReader(raw)
	magic := make([]byte, len(segMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != segMagic {
		return nil, errBadHeader
	}
	plen, err := binary.ReadUvarint(r)
	if err != nil || plen > uint64(r.Len()) {
		return nil, errBadHeader
	}
	path := make([]byte, plen)
	_, _ = io.ReadFull(r, path)
	ms, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, errBadHeader
	}
	c := &segmentContent{path: string(path), created: time.UnixMilli(int64(ms))}
	c.good = int64(len(raw) - r.Len())
	for r.Len() > 0 {
		n, err := binary.ReadUvarint(r)
		if err != nil || n+4 > uint64(r.Len()) {
			break
		}
		var sum [4]byte
		_, _ = io.ReadFull(r, sum[:])
		payload := raw[len(raw)-r.Len() : len(raw)-r.Len()+int(n)]
		_, _ = r.Seek(int64(n), io.SeekCurrent)
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(sum[:]) {
			break
		}
		rec, ok := decodePayload(payload)
		if !ok {
			break
		}
		c.records = append(c.records, rec)
		c.good = int64(len(raw) - r.Len())
		c.ends = append(c.ends, c.good)
	}
	return c, nil
}

func decodePayload(p []byte) (spoolRecord, bool) {
	n, k := binary.Uvarint(p)
	if k <= 0 || uint64(len(p)-k) < n {
		return spoolRecord{}, false
	}
	seq := string(p[k : k+int(n)])
	p = p[k+int(n):]
	sub, k := binary.Varint(p)
	if k <= 0 {
		return spoolRecord{}, false
	}
	return spoolRecord{pos: position{seq: seq, sub: sub}, data: p[k:]}, true
}

// segment is an open segment of one shard and partition path.
type segment struct {
	file    string
	path    string
	created time.Time
	f       *os.File
	bytes   int64 // record data bytes
	n       int
	first   position
	pending []byte // frames not yet written
}

// createSegment creates a new open segment file in dir.
func createSegment(dir, path string, now time.Time, id uint64) (*segment, error) {
	file := filepath.Join(dir, fmt.Sprintf("open-%d-%d.seg", now.UnixNano(), id))
	f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	s := &segment{file: file, path: path, created: now, f: f}
	s.pending = segmentHeader(path, now)
	return s, nil
}

// cutAfter drops the records beyond committed (and everything when
// nothing is committed), moving good back to match.
func (c *segmentContent) cutAfter(committed position, has bool) {
	n := 0
	for n < len(c.records) && has && !committed.less(c.records[n].pos) {
		n++
	}
	if n == len(c.records) {
		return
	}
	if n == 0 {
		c.good = c.headerLen()
	} else {
		c.good = c.ends[n-1]
	}
	c.records, c.ends = c.records[:n], c.ends[:n]
}

func (c *segmentContent) headerLen() int64 {
	return int64(len(segmentHeader(c.path, c.created)))
}

// reopenSegment opens a recovered open segment for appending, cut to its
// intact prefix.
func reopenSegment(file string, c *segmentContent) (*segment, error) {
	f, err := os.OpenFile(file, os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(c.good); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(c.good, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	s := &segment{file: file, path: c.path, created: c.created, f: f, n: len(c.records)}
	for _, r := range c.records {
		s.bytes += int64(len(r.data))
	}
	if len(c.records) > 0 {
		s.first = c.records[0].pos
	}
	return s, nil
}

func (s *segment) add(r spoolRecord) {
	if s.n == 0 {
		s.first = r.pos
	}
	s.n++
	s.bytes += int64(len(r.data))
	s.pending = appendFrame(s.pending, r)
}

// flush writes the pending frames and fsyncs the file.
func (s *segment) flush() error {
	if len(s.pending) == 0 {
		return nil
	}
	if _, err := s.f.Write(s.pending); err != nil {
		return fmt.Errorf("writing spool segment %s: %w", s.file, err)
	}
	s.pending = s.pending[:0]
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("syncing spool segment %s: %w", s.file, err)
	}
	return nil
}

// seal closes the segment and renames it open-* → sealed-*; the caller
// syncs the directory.
func (s *segment) seal() (string, error) {
	if err := s.f.Close(); err != nil {
		return "", fmt.Errorf("closing spool segment %s: %w", s.file, err)
	}
	sealed := filepath.Join(filepath.Dir(s.file), "sealed-"+strings.TrimPrefix(filepath.Base(s.file), "open-"))
	if err := os.Rename(s.file, sealed); err != nil {
		return "", fmt.Errorf("sealing spool segment: %w", err)
	}
	return sealed, nil
}
