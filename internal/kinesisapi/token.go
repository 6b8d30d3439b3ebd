package kinesisapi

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// nextTokenTTL is how long a NextToken stays usable, as Kinesis documents.
const nextTokenTTL = 300 * time.Second

// pageToken is the content of a NextToken: which listing it continues,
// where, and when it was issued.
type pageToken struct {
	Kind   string `json:"k"`           // "shards" or "streams"
	Stream string `json:"s,omitempty"` // stream name (shards)
	After  string `json:"a"`           // last shard id or stream name returned
	Filter string `json:"f,omitempty"` // ShardFilter type (shards)
	At     int64  `json:"m,omitempty"` // ShardFilter timestamp, Unix ms
	Issued int64  `json:"t"`           // Unix milliseconds
}

// tokenCodec seals page tokens with an HMAC so a client can neither forge
// nor edit one. The key lives only in memory: tokens do not survive a
// restart, which their five-minute lifetime makes harmless.
type tokenCodec struct {
	key []byte
}

func newTokenCodec() tokenCodec {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails
	return tokenCodec{key: key}
}

func (c tokenCodec) seal(t pageToken) string {
	payload, _ := json.Marshal(t) // plain struct of strings and ints
	mac := hmac.New(sha256.New, c.key)
	mac.Write(payload)
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// open verifies and decodes a token of the given kind issued no longer
// than nextTokenTTL before now.
func (c tokenCodec) open(token, kind string, now time.Time) (pageToken, error) {
	var t pageToken
	invalid := invalidArgument("The NextToken is not valid.")
	p, sig, ok := strings.Cut(token, ".")
	if !ok {
		return t, invalid
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p)
	got, err2 := base64.RawURLEncoding.DecodeString(sig)
	if err1 != nil || err2 != nil {
		return t, invalid
	}
	mac := hmac.New(sha256.New, c.key)
	mac.Write(payload)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return t, invalid
	}
	if err := json.Unmarshal(payload, &t); err != nil || t.Kind != kind {
		return pageToken{}, invalid
	}
	if now.Sub(time.UnixMilli(t.Issued)) > nextTokenTTL {
		return pageToken{}, newError(typeExpiredNextToken, http.StatusBadRequest,
			"The NextToken has expired; tokens are valid for %d seconds.", int(nextTokenTTL/time.Second))
	}
	return t, nil
}
