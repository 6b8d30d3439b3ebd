package archive

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		options map[string]any
		errs    []string // each must appear; none means valid
	}{
		{"dir", map[string]any{"dir": "lake"}, nil},
		{"s3", map[string]any{"s3": map[string]any{"bucket": "b", "endpoint": "http://127.0.0.1:7070", "forcePathStyle": true}}, nil},
		{"everything", map[string]any{
			"dir": "lake", "bufferSize": "64KiB", "bufferInterval": "5s", "gzip": true, "timeField": "ts",
			"timeLayout": "2006-01-02 15:04:05", "prefixStyle": "hive", "partitionBy": "country",
			"decode": map[string]any{"format": "csv", "columns": []any{"ts", "country"}},
		}, nil},
		{"no target", map[string]any{}, []string{"dir: one of dir and s3 is required"}},
		{"both targets", map[string]any{"dir": "x", "s3": map[string]any{"bucket": "b"}}, []string{"dir: give dir or s3, not both"}},
		{"every problem at once", map[string]any{
			"s3":          map[string]any{"prefix": "/x", "endpoint": "localhost:9000"},
			"bufferSize":  "1GiB",
			"prefixStyle": "daily", "timeLayout": "2006", "extension": "json.x",
			"decode": map[string]any{"format": "xml"},
		}, []string{
			"s3.bucket: is required", "s3.prefix:", "s3.endpoint:", "bufferSize:", "prefixStyle:", "timeLayout: needs timeField",
			"extension:", "decode.format:",
		}},
		{"interval range", map[string]any{"dir": "x", "bufferInterval": "100ms"}, []string{"bufferInterval: 100ms is outside 1s–24h"}},
		{"bad size", map[string]any{"dir": "x", "bufferSize": "lots"}, []string{`"lots" is not a size`}},
		{"bad duration", map[string]any{"dir": "x", "bufferInterval": "soon"}, []string{`"soon" is not a duration`}},
		{"unknown option", map[string]any{"dir": "x", "bucket": "y"}, []string{"bucket: unknown option; known options are dir, s3,"}},
		{"raw has no fields", map[string]any{"dir": "x", "partitionBy": "c", "decode": map[string]any{"format": "raw"}}, []string{"decode.format: raw records have no fields"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.options)
			if len(tc.errs) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, e := range tc.errs {
				require.Contains(t, err.Error(), e)
			}
			require.NotContains(t, err.Error(), "line ", "yaml line numbers of the re-encoded options mean nothing to the user")
		})
	}
}

func TestDefaults(t *testing.T) {
	c, err := ParseConfig(map[string]any{"dir": "/data/lake"}, "clicks")
	require.NoError(t, err)
	require.EqualValues(t, DefaultBufferSize, c.BufferSize)
	require.Equal(t, DefaultBufferInterval, time.Duration(c.BufferInterval))
	require.Equal(t, StyleHourly, c.PrefixStyle)
	require.Equal(t, "/data/lake/.spool/clicks", c.SpoolDir)
	c, err = ParseConfig(map[string]any{"s3": map[string]any{"bucket": "b"}, "bufferSize": 1000, "bufferInterval": 90}, "clicks")
	require.NoError(t, err)
	require.EqualValues(t, 1000, c.BufferSize)
	require.Equal(t, 90*time.Second, time.Duration(c.BufferInterval))
	require.True(t, strings.HasSuffix(c.SpoolDir, "runnel/spool/clicks"), c.SpoolDir)
}
