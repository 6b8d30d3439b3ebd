package stream

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// A shard iterator is base64 of
//
//	version(1) stream(8) shard(4) position(16) issued-ms(8) mac(16)
//
// where position is the smallest sequence number the next read returns and
// mac is the first 16 bytes of HMAC-SHA256 over everything before it, keyed
// with the server secret. Iterators therefore survive restarts, cannot be
// forged or altered, and expire IteratorTTL after issue.

const (
	iteratorVersion    = 1
	iteratorPayloadLen = 1 + 8 + 4 + 16 + 8
	iteratorMACLen     = 16
	iteratorLen        = iteratorPayloadLen + iteratorMACLen
)

type iterator struct {
	stream uint64
	shard  uint32
	pos    u128
	issued time.Time
}

func encodeIterator(secret []byte, it iterator) string {
	buf := make([]byte, 0, iteratorLen)
	buf = append(buf, iteratorVersion)
	buf = binary.BigEndian.AppendUint64(buf, it.stream)
	buf = binary.BigEndian.AppendUint32(buf, it.shard)
	buf = binary.BigEndian.AppendUint64(buf, it.pos.hi)
	buf = binary.BigEndian.AppendUint64(buf, it.pos.lo)
	buf = binary.BigEndian.AppendUint64(buf, uint64(it.issued.UnixMilli()))
	buf = append(buf, iteratorMAC(secret, buf)...)
	return base64.StdEncoding.EncodeToString(buf)
}

func iteratorMAC(secret, payload []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(payload)
	return m.Sum(nil)[:iteratorMACLen]
}

// decodeIterator authenticates and parses an iterator. It does not check
// expiry.
func decodeIterator(secret []byte, s string) (iterator, bool) {
	if base64.StdEncoding.DecodedLen(len(s)) < iteratorLen || len(s) > 2*iteratorLen {
		return iterator{}, false
	}
	buf, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(buf) != iteratorLen || buf[0] != iteratorVersion {
		return iterator{}, false
	}
	if !hmac.Equal(buf[iteratorPayloadLen:], iteratorMAC(secret, buf[:iteratorPayloadLen])) {
		return iterator{}, false
	}
	return iterator{
		stream: binary.BigEndian.Uint64(buf[1:]),
		shard:  binary.BigEndian.Uint32(buf[9:]),
		pos:    u128{binary.BigEndian.Uint64(buf[13:]), binary.BigEndian.Uint64(buf[21:])},
		issued: time.UnixMilli(int64(binary.BigEndian.Uint64(buf[29:]))),
	}, true
}
