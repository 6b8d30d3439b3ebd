package source

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/runnel-dev/runnel/internal/producer"
)

// Default value lists of Random.
var (
	DefaultCountries  = []string{"US", "GB", "DE", "FR", "IN", "BR", "JP", "NG", "AU", "CA"}
	DefaultEventTypes = []string{"view", "click", "add_to_cart", "purchase", "search"}
)

// RandomConfig configures a Random source.
type RandomConfig struct {
	// Count is how many events to make; 0 means no end.
	Count int64
	// Countries and EventTypes are the values to pick from. Defaults:
	// DefaultCountries and DefaultEventTypes.
	Countries  []string
	EventTypes []string
	// Key is the field whose value is the partition key: "id" (the
	// default), "country" or "eventType".
	Key string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// RandomEvent is the event Random makes.
type RandomEvent struct {
	Timestamp string  `json:"timestamp"` // RFC 3339, UTC, milliseconds
	Country   string  `json:"country"`
	EventType string  `json:"eventType"`
	Value     float64 `json:"value"` // 0.01 to 1000.00
	ID        string  `json:"id"`    // random UUID
}

// Random is a Source of random events.
type Random struct {
	cfg  RandomConfig
	made int64
}

var _ Source = (*Random)(nil)

// NewRandom returns a Random source.
func NewRandom(cfg RandomConfig) (*Random, error) {
	if len(cfg.Countries) == 0 {
		cfg.Countries = DefaultCountries
	}
	if len(cfg.EventTypes) == 0 {
		cfg.EventTypes = DefaultEventTypes
	}
	switch cfg.Key {
	case "":
		cfg.Key = "id"
	case "id", "country", "eventType":
	default:
		return nil, fmt.Errorf("key field %q: want id, country or eventType", cfg.Key)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Count < 0 {
		return nil, fmt.Errorf("count %d is negative", cfg.Count)
	}
	return &Random{cfg: cfg}, nil
}

// Next returns a new event, or io.EOF after Count events.
func (r *Random) Next(ctx context.Context) (producer.Record, error) {
	if err := ctx.Err(); err != nil {
		return producer.Record{}, context.Cause(ctx)
	}
	if r.cfg.Count > 0 && r.made >= r.cfg.Count {
		return producer.Record{}, io.EOF
	}
	r.made++
	ev := RandomEvent{
		Timestamp: r.cfg.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		Country:   r.cfg.Countries[rand.IntN(len(r.cfg.Countries))],
		EventType: r.cfg.EventTypes[rand.IntN(len(r.cfg.EventTypes))],
		Value:     float64(rand.IntN(100000)+1) / 100,
		ID:        NewUUID(),
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return producer.Record{}, err
	}
	key := ev.ID
	switch r.cfg.Key {
	case "country":
		key = ev.Country
	case "eventType":
		key = ev.EventType
	}
	return producer.Record{PartitionKey: key, Data: data}, nil
}
