package app

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDefaultsAreValid(t *testing.T) {
	require.NoError(t, Defaults().Validate())
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string // substrings of the error; none means valid
	}{
		{"ipv6 listen", func(c *Config) { c.Listen = "[::1]:0" }, nil},
		{"host name listen", func(c *Config) { c.Listen = "localhost:4567" }, nil},
		{"all interfaces", func(c *Config) { c.Listen = ":4567" }, []string{`listen address ":4567" is reachable from other machines`}},
		{"all interfaces insecure", func(c *Config) { c.Listen, c.Insecure = ":4567", true }, nil},
		{"all interfaces with auth", func(c *Config) { c.Listen, c.AuthFile = ":4567", "keys.yaml" }, nil},
		{"public address", func(c *Config) { c.Listen = "192.0.2.1:4567" }, []string{"--auth"}},
		{"loopback range", func(c *Config) { c.Listen = "127.0.0.2:4567" }, nil},
		{"limits aws", func(c *Config) { c.Limits = LimitsAWS }, nil},
		{"bad limits", func(c *Config) { c.Limits = "strict" }, []string{`limits "strict"`}},
		{"fsync never", func(c *Config) { c.Fsync = FsyncNever }, nil},
		{"listen without port", func(c *Config) { c.Listen = "127.0.0.1" }, []string{`listen address "127.0.0.1"`}},
		{"port out of range", func(c *Config) { c.Listen = "127.0.0.1:70000" }, []string{"port must be"}},
		{"empty data dir", func(c *Config) { c.DataDir = "" }, []string{"data dir"}},
		{"bad fsync", func(c *Config) { c.Fsync = "sometimes" }, []string{`fsync "sometimes"`}},
		{"bad region", func(c *Config) { c.Region = "mars" }, []string{`region "mars"`}},
		{"bad account", func(c *Config) { c.AccountID = "12" }, []string{`account id "12"`}},
		{"zero shard limit", func(c *Config) { c.ShardLimit = 0 }, []string{"shard limit 0"}},
		{"zero shutdown timeout", func(c *Config) { c.ShutdownTimeout = 0 }, []string{"shutdown timeout"}},
		{
			"every problem at once",
			func(c *Config) {
				c.Listen, c.DataDir, c.Fsync, c.Region, c.AccountID, c.ShardLimit, c.ShutdownTimeout = "x", "", "", "", "", -1, -time.Second
			},
			[]string{"listen address", "data dir", "fsync", "region", "account id", "shard limit", "shutdown timeout"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Defaults()
			tc.modify(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
			require.Len(t, strings.Split(err.Error(), "\n"), len(tc.want))
		})
	}
}
