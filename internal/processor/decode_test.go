package processor

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/lambda"
)

func rec(data string) *lambda.KinesisEventRecord {
	return &lambda.KinesisEventRecord{
		EventID: "shardId-000000000001:4959",
		Kinesis: lambda.KinesisRecord{Data: []byte(data), SequenceNumber: "4959", ApproximateArrivalTimestamp: 1450310400.25},
	}
}

func TestDecodeFormats(t *testing.T) {
	ev, err := DecodeConfig{}.Decode(rec(`{"page":"cart","n":3,"user":{"country":"DE"},"ts":"2015-12-17T01:02:03Z"}`))
	require.NoError(t, err)
	require.Equal(t, "shardId-000000000001", ev.ShardID)
	require.Equal(t, "4959", ev.SequenceNumber)
	require.Equal(t, time.Date(2015, 12, 17, 0, 0, 0, 250e6, time.UTC), ev.Arrival)
	require.Equal(t, "cart", ev.String("page"))
	require.Equal(t, "3", ev.String("n"))
	require.Equal(t, "DE", ev.String("user.country"))
	require.Equal(t, "", ev.String("missing"))
	n, err := ev.Number("n")
	require.NoError(t, err)
	require.Equal(t, 3.0, n)
	_, err = ev.Number("page")
	require.Error(t, err)
	ts, err := ev.Time("ts", "")
	require.NoError(t, err)
	require.Equal(t, time.Date(2015, 12, 17, 1, 2, 3, 0, time.UTC), ts)

	ev, err = DecodeConfig{Format: FormatCSV, Columns: []string{"country", "value"}, Delimiter: `\t`}.Decode(rec("DE\t12\n"))
	require.NoError(t, err)
	require.Equal(t, "DE", ev.String("country"))
	_, err = DecodeConfig{Format: FormatCSV, Columns: []string{"a", "b", "c"}}.Decode(rec("1,2"))
	require.ErrorIs(t, err, ErrDecode)

	for _, bad := range []string{`not json`, `[1,2]`, `null`, `{"a":1} {"b":2}`, ``} {
		_, err := DecodeConfig{}.Decode(rec(bad))
		require.True(t, errors.Is(err, ErrDecode), bad)
	}
	_, err = DecodeConfig{Format: FormatText}.Decode(rec("\xff\xfe"))
	require.ErrorIs(t, err, ErrDecode)

	require.Error(t, DecodeConfig{Format: "xml"}.Validate())
	require.Error(t, DecodeConfig{Format: FormatCSV}.Validate())
	require.NoError(t, DecodeConfig{Format: FormatCSV, Columns: []string{"a"}, Delimiter: "\t"}.Validate())
}

func TestEventTimes(t *testing.T) {
	want := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, data := range []string{`{"t":"2026-01-02T03:04:05Z"}`, `{"t":"2026-01-02 03:04:05.000"}`, `{"t":1767323045}`, `{"t":1767323045000}`, `{"t":"1767323045"}`} {
		ev, err := DecodeConfig{}.Decode(rec(data))
		require.NoError(t, err)
		got, err := ev.Time("t", "")
		require.NoError(t, err, data)
		require.Equal(t, want, got, data)
	}
	ev, _ := DecodeConfig{}.Decode(rec(`{"t":"02/01/2026"}`))
	got, err := ev.Time("t", "02/01/2006")
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), got)
	_, err = ev.Time("t", "")
	require.Error(t, err)
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"a":{"b":1}}`), "json")
	f.Add([]byte("x,y"), "csv")
	f.Add([]byte("\xff"), "text")
	f.Fuzz(func(t *testing.T, data []byte, format string) {
		c := DecodeConfig{Format: format, Columns: []string{"a", "b"}}
		ev, err := c.Decode(&lambda.KinesisEventRecord{Kinesis: lambda.KinesisRecord{Data: data}})
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error does not wrap ErrDecode: %v", err)
			}
			return
		}
		for _, p := range []string{"a", "a.b", "b", "text"} {
			_ = ev.String(p)
			_, _ = ev.Number(p)
			_, _ = ev.Time(p, "")
		}
	})
}

func TestDecodePathsMatchesFullDecode(t *testing.T) {
	data := `{"page":"ca\"rt","n":3,"user":{"country":"DE","tags":[1,2]},"ok":true,"nil":null,"other":"x"}`
	full, err := DecodeConfig{}.Decode(rec(data))
	require.NoError(t, err)
	paths := []string{"page", "n", "user.country", "user.tags", "ok", "nil", "missing"}
	part, err := DecodeConfig{Paths: paths}.Decode(rec(data))
	require.NoError(t, err)
	for _, p := range paths {
		require.Equal(t, full.String(p), part.String(p), p)
	}
	_, ok := part.Lookup("other")
	require.False(t, ok, "fields outside Paths are not decoded")
	for _, bad := range []string{`not json`, `[1]`, `{"page":`, `{"a":1} x`, ``} {
		_, err := DecodeConfig{Paths: paths}.Decode(rec(bad))
		require.ErrorIs(t, err, ErrDecode, bad)
	}
}

func TestDecodePathsDuplicateKeys(t *testing.T) {
	paths := []string{"a", "u.c", "s"}
	for _, data := range []string{
		`{"a":1,"a":2}`,
		`{"u":{"c":"x"},"u":{"d":1}}`,
		`{"u":{"c":"x"},"u":5}`,
		`{"u":5,"u":{"c":"y"}}`,
		`{"u":{"c":"x","c":"y"}}`,
		`{"a":{"b":1},"a":[2]}`,
		`{"s":"\u00e9\ud800"}`,
		"{\"s\":\"x\",\"s\":\"\xff\"}",
	} {
		full, err := DecodeConfig{}.Decode(rec(data))
		require.NoError(t, err, data)
		part, err := DecodeConfig{Paths: paths}.Decode(rec(data))
		require.NoError(t, err, data)
		for _, p := range paths {
			require.Equal(t, full.String(p), part.String(p), "%s in %s", p, data)
		}
	}
}

func FuzzDecodePaths(f *testing.F) {
	f.Add([]byte(`{"a":{"b":"x\u00e9"},"c":1.5e3}`))
	f.Add([]byte(`{"a":"\\"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		paths := []string{"a", "a.b", "c"}
		full, ferr := DecodeConfig{}.Decode(&lambda.KinesisEventRecord{Kinesis: lambda.KinesisRecord{Data: data}})
		part, perr := DecodeConfig{Paths: paths}.Decode(&lambda.KinesisEventRecord{Kinesis: lambda.KinesisRecord{Data: data}})
		if ferr != nil || perr != nil {
			if perr != nil && !errors.Is(perr, ErrDecode) {
				t.Fatalf("error does not wrap ErrDecode: %v", perr)
			}
			return
		}
		for _, p := range paths {
			if full.String(p) != part.String(p) {
				t.Fatalf("path %s: full %q, paths %q", p, full.String(p), part.String(p))
			}
		}
	})
}
