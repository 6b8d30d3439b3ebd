package kinesisapi

import (
	"encoding/json"
	"net/http"
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

// tokenSealer seals and opens tokens with the server secret persisted in
// the data dir (the codec shard iterators use too), so NextTokens survive a
// restart; *stream.Service satisfies it.
type tokenSealer interface {
	SealToken(payload []byte) string
	OpenToken(token string) ([]byte, bool)
}

// tokenCodec turns page tokens into NextTokens and back: a client can
// neither forge nor edit one.
type tokenCodec struct {
	sealer tokenSealer
}

func (c tokenCodec) seal(t pageToken) string {
	payload, _ := json.Marshal(t) // plain struct of strings and ints
	return c.sealer.SealToken(payload)
}

// open verifies and decodes a token of the given kind issued no longer
// than nextTokenTTL before now.
func (c tokenCodec) open(token, kind string, now time.Time) (pageToken, error) {
	var t pageToken
	invalid := invalidArgument("The NextToken is not valid.")
	payload, ok := c.sealer.OpenToken(token)
	if !ok {
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
