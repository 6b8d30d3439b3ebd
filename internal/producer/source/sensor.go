package source

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"time"

	"github.com/runnel-dev/runnel/internal/producer"
)

// The Wild Rydes unicorns start near the Empire State Building, walk about
// 30 m a second and start with 150 health and magic points.
const (
	sensorStartLatitude  = 40.749167
	sensorStartLongitude = -73.985184
	sensorSpeed          = 30.0 // meters per second, ± 1
	sensorStartPoints    = 150
	metersPerDegreeLat   = 110540.0
	metersPerDegreeLon   = 111320.0 // at the equator; times cos(latitude)
)

// UnicornStatus is one sensor reading, with the field names of the Wild
// Rydes data-processing workshop.
type UnicornStatus struct {
	Name         string
	StatusTime   string // "2006-01-02 15:04:05.000", UTC
	Latitude     float64
	Longitude    float64
	Distance     float64 // meters since the previous reading
	HealthPoints int
	MagicPoints  int
}

// SensorConfig configures a Sensor.
type SensorConfig struct {
	// Names are the unicorns; each reading round has one reading per name.
	Names []string
	// Interval is the time between rounds. Default 1 s.
	Interval time.Duration
	// Count is how many readings to make in all; 0 means no end.
	Count int64
	// Now is the clock and After the timer; time.Now and time.After when
	// nil.
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
}

type unicorn struct {
	name          string
	lat, lon      float64
	bearing       float64 // radians
	health, magic int
}

// Sensor is a Source of simulated unicorn sensor readings: each unicorn
// moves smoothly (its bearing drifts a little each reading) and its points
// wander by ±1. The partition key is the unicorn's name.
type Sensor struct {
	cfg      SensorConfig
	unicorns []*unicorn
	next     int // index of the next unicorn to read in this round
	made     int64
	last     time.Time
}

var _ Source = (*Sensor)(nil)

// NewSensor returns a Sensor.
func NewSensor(cfg SensorConfig) (*Sensor, error) {
	if len(cfg.Names) == 0 {
		return nil, errors.New("no unicorn names")
	}
	if cfg.Interval == 0 {
		cfg.Interval = time.Second
	}
	if cfg.Interval < 0 {
		return nil, errors.New("interval must be positive")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	s := &Sensor{cfg: cfg}
	for i, name := range cfg.Names {
		// Spread the starting points a few hundred meters apart.
		s.unicorns = append(s.unicorns, &unicorn{
			name:    name,
			lat:     sensorStartLatitude + float64(i)*0.002,
			lon:     sensorStartLongitude - float64(i)*0.002,
			bearing: rand.Float64() * 2 * math.Pi,
			health:  sensorStartPoints,
			magic:   sensorStartPoints,
		})
	}
	return s, nil
}

// Next returns the next reading. Each round of readings starts Interval
// after the previous one; Next waits for it.
func (s *Sensor) Next(ctx context.Context) (producer.Record, error) {
	if s.cfg.Count > 0 && s.made >= s.cfg.Count {
		return producer.Record{}, io.EOF
	}
	if s.next == 0 && !s.last.IsZero() {
		if wait := s.last.Add(s.cfg.Interval).Sub(s.cfg.Now()); wait > 0 {
			select {
			case <-s.cfg.After(wait):
			case <-ctx.Done():
				return producer.Record{}, context.Cause(ctx)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return producer.Record{}, context.Cause(ctx)
	}
	if s.next == 0 {
		s.last = s.cfg.Now()
	}
	u := s.unicorns[s.next]
	s.next = (s.next + 1) % len(s.unicorns)
	s.made++

	seconds := s.cfg.Interval.Seconds()
	distance := (sensorSpeed - 1 + 2*rand.Float64()) * seconds
	u.bearing += (rand.Float64() - 0.5) * 0.2 // up to ±0.1 rad per reading
	u.lat += distance * math.Sin(u.bearing) / metersPerDegreeLat
	u.lon += distance * math.Cos(u.bearing) / (metersPerDegreeLon * math.Cos(u.lat*math.Pi/180))
	u.health = wander(u.health)
	u.magic = wander(u.magic)
	data, err := json.Marshal(UnicornStatus{
		Name:         u.name,
		StatusTime:   s.last.UTC().Format("2006-01-02 15:04:05.000"),
		Latitude:     u.lat,
		Longitude:    u.lon,
		Distance:     math.Round(distance*100) / 100,
		HealthPoints: u.health,
		MagicPoints:  u.magic,
	})
	if err != nil {
		return producer.Record{}, err
	}
	return producer.Record{PartitionKey: u.name, Data: data}, nil
}

// wander moves points by -1, 0 or +1, keeping them within 0..200.
func wander(p int) int {
	return min(max(p+rand.IntN(3)-1, 0), 200)
}
