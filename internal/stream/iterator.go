package stream

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"time"
)

// Every token runnel hands out (shard iterators, and the API's NextTokens)
// is sealed by one codec: base64 of
//
//	kind(1) payload mac(16)
//
// where mac is the first 16 bytes of HMAC-SHA256 over kind and payload,
// keyed with the server secret persisted in the data dir. Tokens therefore
// survive restarts and cannot be forged, altered, or passed off as a token
// of another kind.
//
// A shard iterator's payload is
//
//	stream(8) shard(4) position(16) issued-ms(8)
//
// where position is the smallest sequence number the next read returns;
// iterators expire IteratorTTL after issue.

const (
	tokenIterator byte = 1
	tokenPage     byte = 2
	tokenMACLen        = 16
	// maxTokenPayload bounds what openToken decodes.
	maxTokenPayload = 1024

	iteratorPayloadLen = 8 + 4 + 16 + 8
)

// sealToken seals payload as a token of kind.
func sealToken(secret []byte, kind byte, payload []byte) string {
	buf := make([]byte, 0, 1+len(payload)+tokenMACLen)
	buf = append(buf, kind)
	buf = append(buf, payload...)
	buf = append(buf, tokenMAC(secret, buf)...)
	return base64.StdEncoding.EncodeToString(buf)
}

func tokenMAC(secret, msg []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(msg)
	return m.Sum(nil)[:tokenMACLen]
}

// openToken authenticates a token of kind and returns its payload.
func openToken(secret []byte, kind byte, s string) ([]byte, bool) {
	if len(s) > base64.StdEncoding.EncodedLen(1+maxTokenPayload+tokenMACLen) {
		return nil, false
	}
	// Only the one encoding sealToken writes: strict padding bits, and no
	// line breaks (which the decoder would skip).
	if strings.ContainsAny(s, "\r\n") {
		return nil, false
	}
	buf, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(buf) < 1+tokenMACLen || buf[0] != kind {
		return nil, false
	}
	body, mac := buf[:len(buf)-tokenMACLen], buf[len(buf)-tokenMACLen:]
	if !hmac.Equal(mac, tokenMAC(secret, body)) {
		return nil, false
	}
	return body[1:], true
}

// SealToken seals an API page token (a NextToken's content) with the
// server secret; OpenToken returns the payload of a token SealToken made,
// on this process or an earlier one on the same data dir. Expiry is the
// caller's to encode and check.
func (s *Service) SealToken(payload []byte) string { return sealToken(s.secret, tokenPage, payload) }

// OpenToken authenticates a token from SealToken; false when it is
// malformed, forged or another kind of token.
func (s *Service) OpenToken(token string) ([]byte, bool) {
	return openToken(s.secret, tokenPage, token)
}

type iterator struct {
	stream uint64
	shard  uint32
	pos    u128
	issued time.Time
}

func encodeIterator(secret []byte, it iterator) string {
	buf := make([]byte, 0, iteratorPayloadLen)
	buf = binary.BigEndian.AppendUint64(buf, it.stream)
	buf = binary.BigEndian.AppendUint32(buf, it.shard)
	buf = binary.BigEndian.AppendUint64(buf, it.pos.hi)
	buf = binary.BigEndian.AppendUint64(buf, it.pos.lo)
	buf = binary.BigEndian.AppendUint64(buf, uint64(it.issued.UnixMilli()))
	return sealToken(secret, tokenIterator, buf)
}

// decodeIterator authenticates and parses an iterator. It does not check
// expiry.
func decodeIterator(secret []byte, s string) (iterator, bool) {
	buf, ok := openToken(secret, tokenIterator, s)
	if !ok || len(buf) != iteratorPayloadLen {
		return iterator{}, false
	}
	return iterator{
		stream: binary.BigEndian.Uint64(buf[0:]),
		shard:  binary.BigEndian.Uint32(buf[8:]),
		pos:    u128{binary.BigEndian.Uint64(buf[12:]), binary.BigEndian.Uint64(buf[20:])},
		issued: time.UnixMilli(int64(binary.BigEndian.Uint64(buf[28:]))),
	}, true
}
