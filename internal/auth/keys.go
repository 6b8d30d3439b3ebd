// Package auth holds runnel's access keys and verifies AWS Signature
// Version 4 requests signed with them.
package auth

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"

	"go.yaml.in/yaml/v3"
)

// Permission is what a key may do with the streams it names.
type Permission int

const (
	// Put is PutRecord and PutRecords.
	Put Permission = iota
	// Read is reading records and describing the stream: GetShardIterator,
	// GetRecords, DescribeStream, DescribeStreamSummary, ListShards, and
	// the enhanced fan-out consumer calls including SubscribeToShard.
	Read
)

func (p Permission) String() string {
	if p == Put {
		return "put"
	}
	return "read"
}

// AnyStream in a put or read list stands for every stream.
const AnyStream = "*"

// Key is one access key and what it may do. A key with All may call every
// action on every stream; otherwise it may only Put into the streams in
// PutStreams and Read the streams in ReadStreams.
type Key struct {
	ID          string   `yaml:"id"`
	Secret      string   `yaml:"secret"`
	All         bool     `yaml:"all"`
	PutStreams  []string `yaml:"put"`
	ReadStreams []string `yaml:"read"`
	// Account is the 12-digit account the key belongs to; empty for the
	// server's own. It scopes the key's streams when the server serves
	// several accounts (serve --multi-region).
	Account string `yaml:"account"`
}

// LogValue keeps the secret out of logs.
func (k Key) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", k.ID), slog.Bool("all", k.All),
		slog.Any("put", k.PutStreams), slog.Any("read", k.ReadStreams), slog.String("account", k.Account))
}

// Allows reports whether k may exercise p on the named stream.
func (k *Key) Allows(p Permission, stream string) bool {
	if k.All {
		return true
	}
	list := k.ReadStreams
	if p == Put {
		list = k.PutStreams
	}
	return slices.Contains(list, AnyStream) || (stream != "" && slices.Contains(list, stream))
}

// ReadsAll reports whether k may read every stream (all: true, or read:
// ["*"]): what server-wide figures such as /metrics need.
func (k *Key) ReadsAll() bool {
	return k.All || slices.Contains(k.ReadStreams, AnyStream)
}

// Keys is a loaded credentials file. It is safe for concurrent use;
// Replace swaps in another file's keys at once, for every holder of ks.
type Keys struct {
	byID atomic.Pointer[map[string]*Key]
}

// NewKeys checks keys and indexes them by id.
func NewKeys(keys []Key) (*Keys, error) {
	var errs []error
	byID := make(map[string]*Key, len(keys))
	for i := range keys {
		k := &keys[i]
		where := fmt.Sprintf("key %d", i+1)
		if k.ID != "" {
			where = fmt.Sprintf("key %d (%s)", i+1, k.ID)
		}
		switch {
		case k.ID == "":
			errs = append(errs, fmt.Errorf("%s: id must not be empty", where))
		case byID[k.ID] != nil:
			errs = append(errs, fmt.Errorf("%s: id is listed twice", where))
		}
		if k.Secret == "" {
			errs = append(errs, fmt.Errorf("%s: secret must not be empty", where))
		}
		if k.Account != "" && (len(k.Account) != 12 || strings.Trim(k.Account, "0123456789") != "") {
			errs = append(errs, fmt.Errorf("%s: account %q: want 12 digits", where, k.Account))
		}
		if k.All && (len(k.PutStreams) > 0 || len(k.ReadStreams) > 0) {
			errs = append(errs, fmt.Errorf("%s: all: true already allows everything; drop put and read", where))
		}
		if !k.All && len(k.PutStreams) == 0 && len(k.ReadStreams) == 0 {
			errs = append(errs, fmt.Errorf("%s: allows nothing; set all: true or list streams under put or read", where))
		}
		for _, s := range append(slices.Clone(k.PutStreams), k.ReadStreams...) {
			if s == "" {
				errs = append(errs, fmt.Errorf("%s: a stream name must not be empty", where))
			}
		}
		if k.ID != "" && byID[k.ID] == nil {
			byID[k.ID] = k
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	ks := &Keys{}
	ks.byID.Store(&byID)
	return ks, nil
}

// Lookup returns the key with the given id, or nil.
func (ks *Keys) Lookup(id string) *Key { return (*ks.byID.Load())[id] }

// Len is the number of keys.
func (ks *Keys) Len() int { return len(*ks.byID.Load()) }

// Replace makes ks hold from's keys: a request checked after it returns
// is checked against them.
func (ks *Keys) Replace(from *Keys) { ks.byID.Store(from.byID.Load()) }

// file is the credentials file format.
type file struct {
	Keys []Key `yaml:"keys"`
}

// Load reads a credentials file:
//
//	keys:
//	  - id: AKIAADMIN
//	    secret: a-long-random-secret
//	    all: true
//	  - id: AKIADEVICE7
//	    secret: another-secret
//	    put: [clicks]
//	  - id: AKIADASHBOARD
//	    secret: yet-another
//	    read: [clicks, orders]
//
// Unknown fields are errors, so a misspelt permission is not silently
// ignored.
func Load(path string) (*Keys, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading credentials file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f file
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("credentials file %s: %w", path, err)
	}
	if len(f.Keys) == 0 {
		return nil, fmt.Errorf("credentials file %s: no keys", path)
	}
	ks, err := NewKeys(f.Keys)
	if err != nil {
		return nil, fmt.Errorf("credentials file %s:\n%w", path, err)
	}
	return ks, nil
}
