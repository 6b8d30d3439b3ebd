package source

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/producer"
)

func readAll(t *testing.T, s Source, limit int) ([]producer.Record, error) {
	t.Helper()
	var out []producer.Record
	for range limit {
		r, err := s.Next(t.Context())
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

func TestFileColumns(t *testing.T) {
	cases := []struct {
		name, file, content string
		cfg                 FileConfig
		want                []string
		wantKeys            []string
	}{
		{name: "header", file: "a.tsv", content: "x\ty\n1\t2\n", cfg: FileConfig{Key: "y"},
			want: []string{`{"x":"1","y":"2"}`}, wantKeys: []string{"2"}},
		{name: "fields replace header", file: "a.csv", content: "x,y\n1,2\n", cfg: FileConfig{Fields: []string{"p", "q"}, Key: "p"},
			want: []string{`{"p":"1","q":"2"}`}, wantKeys: []string{"1"}},
		{name: "no header with fields", file: "a.csv", content: "1,2\n3,4\n", cfg: FileConfig{Fields: []string{"p", "q"}, NoHeader: true},
			want: []string{`{"p":"1","q":"2"}`, `{"p":"3","q":"4"}`}},
		{name: "no header no fields", file: "a.csv", content: "1,2\r\n", cfg: FileConfig{NoHeader: true},
			want: []string{`{"col1":"1","col2":"2"}`}},
		{name: "csv quoting and blank lines", file: "a.csv", content: "x,y\n\n\"a,b\",\"line\nbreak\"\n", cfg: FileConfig{},
			want: []string{`{"x":"a,b","y":"line\nbreak"}`}},
		{name: "jsonl key of any type", file: "a.jsonl", content: "{\"k\":\"s\"}\n{\"k\":7}\n", cfg: FileConfig{Key: "k"},
			want: []string{`{"k":"s"}`, `{"k":7}`}, wantKeys: []string{"s", "7"}},
		{name: "format override", file: "data.txt", content: "x|y\n", cfg: FileConfig{Format: TSV},
			want: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Path = writeFile(t, tc.file, tc.content)
			f, err := OpenFile(cfg)
			require.NoError(t, err)
			defer f.Close()
			recs, err := readAll(t, f, 100)
			require.NoError(t, err)
			var got []string
			for i, r := range recs {
				got = append(got, string(r.Data))
				if tc.wantKeys != nil {
					require.Equal(t, tc.wantKeys[i], r.PartitionKey)
				} else {
					require.Regexp(t, regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`), r.PartitionKey)
				}
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestFileOpenErrors(t *testing.T) {
	for name, cfg := range map[string]FileConfig{
		"unknown extension": {Path: writeFile(t, "a.xml", "")},
		"key not a column":  {Path: writeFile(t, "a.csv", "x,y\n"), Key: "z"},
		"duplicate column":  {Path: writeFile(t, "a.csv", "x,x\n")},
		"empty":             {Path: writeFile(t, "a.csv", "")},
		"missing":           {Path: filepath.Join(t.TempDir(), "none.csv")},
		"loop stdin":        {Path: "-", Loop: true, Stdin: strings.NewReader("")},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := OpenFile(cfg)
			require.Error(t, err)
		})
	}
}

func TestFileBadLines(t *testing.T) {
	path := writeFile(t, "k.jsonl", "{\"k\":1}\n[1]\n{\"j\":2}\n{\"k\":\"\"}\n{\"k\":null}\nnope\n{\"k\":3}\n")
	var bad []string
	f, err := OpenFile(FileConfig{Path: path, Key: "k", SkipBad: true, OnBad: func(le *LineError) { bad = append(bad, le.Error()) }})
	require.NoError(t, err)
	recs, err := readAll(t, f, 100)
	require.NoError(t, err)
	require.Len(t, recs, 2)
	require.Equal(t, int64(5), f.Skipped)
	require.Equal(t, []string{
		path + `:2: not a JSON object, so it has no key field "k"`,
		path + `:3: no key field "k"`,
		path + `:4: key field "k" is empty`,
		path + `:5: no key field "k"`,
		path + `:6: bad JSON: invalid character 'o' in literal null (expecting 'u')`,
	}, bad)

	f, err = OpenFile(FileConfig{Path: path, Key: "k"})
	require.NoError(t, err)
	recs, err = readAll(t, f, 100)
	var le *LineError
	require.ErrorAs(t, err, &le)
	require.Equal(t, 2, le.Line)
	require.Len(t, recs, 1)
}

func TestFileLoop(t *testing.T) {
	f, err := OpenFile(FileConfig{Path: writeFile(t, "l.csv", "a\n1\n2\n"), Loop: true})
	require.NoError(t, err)
	recs, err := readAll(t, f, 7)
	require.NoError(t, err)
	require.Len(t, recs, 7)
	for i, r := range recs {
		require.Equal(t, []string{`{"a":"1"}`, `{"a":"2"}`}[i%2], string(r.Data))
	}
	f, err = OpenFile(FileConfig{Path: writeFile(t, "h.csv", "a\n"), Loop: true})
	require.NoError(t, err)
	_, err = readAll(t, f, 7)
	require.ErrorContains(t, err, "no records to loop over")
}

func TestRandom(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	r, err := NewRandom(RandomConfig{Count: 50, Countries: []string{"FR"}, EventTypes: []string{"a", "b"}, Now: func() time.Time { return now }})
	require.NoError(t, err)
	recs, err := readAll(t, r, 100)
	require.NoError(t, err)
	require.Len(t, recs, 50)
	for _, rec := range recs {
		var ev RandomEvent
		require.NoError(t, json.Unmarshal(rec.Data, &ev))
		require.Equal(t, "2026-01-02T03:04:05.006Z", ev.Timestamp)
		require.Equal(t, "FR", ev.Country)
		require.Contains(t, []string{"a", "b"}, ev.EventType)
		require.Equal(t, ev.ID, rec.PartitionKey)
	}
	_, err = NewRandom(RandomConfig{Key: "value"})
	require.Error(t, err)
}

func TestSensorMovesSmoothly(t *testing.T) {
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	after := func(d time.Duration) <-chan time.Time {
		clock = clock.Add(d)
		c := make(chan time.Time, 1)
		c <- clock
		return c
	}
	s, err := NewSensor(SensorConfig{Names: []string{"Rocinante", "Shadowfax"}, Count: 200, Now: func() time.Time { return clock }, After: after})
	require.NoError(t, err)
	recs, err := readAll(t, s, 1000)
	require.NoError(t, err)
	require.Len(t, recs, 200)
	prev := map[string]UnicornStatus{}
	for i, r := range recs {
		var u UnicornStatus
		require.NoError(t, json.Unmarshal(r.Data, &u))
		require.Equal(t, u.Name, r.PartitionKey)
		require.Equal(t, []string{"Rocinante", "Shadowfax"}[i%2], u.Name)
		require.InDelta(t, 30, u.Distance, 1.01)
		ts, err := time.Parse("2006-01-02 15:04:05.000", u.StatusTime)
		require.NoError(t, err)
		if p, ok := prev[u.Name]; ok {
			pts, _ := time.Parse("2006-01-02 15:04:05.000", p.StatusTime)
			require.Equal(t, time.Second, ts.Sub(pts))
			// The distance between positions matches the reported distance.
			dy := (u.Latitude - p.Latitude) * metersPerDegreeLat
			dx := (u.Longitude - p.Longitude) * metersPerDegreeLon * math.Cos(u.Latitude*math.Pi/180)
			require.InDelta(t, u.Distance, math.Hypot(dx, dy), 0.1)
			require.LessOrEqual(t, abs(u.HealthPoints-p.HealthPoints), 1)
			require.LessOrEqual(t, abs(u.MagicPoints-p.MagicPoints), 1)
		}
		prev[u.Name] = u
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	s, err = NewSensor(SensorConfig{Names: []string{"x"}})
	require.NoError(t, err)
	_, err = s.Next(ctx)
	require.ErrorIs(t, err, context.Canceled)
}

func abs(x int) int { return max(x, -x) }
