// Package source generates the events producer commands send: the lines of
// a TSV, CSV or JSON-lines file, random events, and simulated unicorn
// sensor readings.
package source

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/runnel-dev/runnel/internal/producer"
)

// Source yields records one at a time. Next returns io.EOF after the last
// record. A Source is used by one goroutine.
type Source interface {
	Next(ctx context.Context) (producer.Record, error)
}

// NewUUID returns a random (version 4) UUID.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand documents it)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
