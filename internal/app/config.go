// Package app wires the parts of `runnel serve` together and runs them for
// the lifetime of one process.
package app

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/runnel-dev/runnel/internal/storage"
	"github.com/runnel-dev/runnel/internal/stream"
)

// Fsync policies.
const (
	// FsyncAlways acknowledges a put only after the write-ahead log is
	// fsynced; concurrent puts share one sync (group commit).
	FsyncAlways = "always"
	// FsyncNever acknowledges a put once it is written to the operating
	// system: it survives a crash of the process, not of the machine.
	FsyncNever = "never"
)

// Config is everything `runnel serve` needs.
type Config struct {
	// Listen is the TCP address of the Kinesis API. Port 0 picks a free
	// port. The default is 127.0.0.1:4567.
	Listen string `json:"listen" yaml:"listen"`
	// DataDir holds the stream data. The default is ./runnel-data.
	DataDir string `json:"dataDir" yaml:"dataDir"`
	// Fsync is FsyncAlways (the default) or FsyncNever.
	Fsync string `json:"fsync" yaml:"fsync"`
	// Region appears in stream ARNs. The default is us-east-1.
	Region string `json:"region" yaml:"region"`
	// AccountID appears in stream ARNs. The default is 000000000000.
	AccountID string `json:"accountId" yaml:"accountId"`
	// MultiRegion scopes streams by the region each request is signed for
	// and the account of its key (Region and AccountID when a key names
	// none), so one server stands in for several regions and accounts.
	// Off by default: every request acts in Region and AccountID.
	MultiRegion bool `json:"multiRegion" yaml:"multiRegion"`
	// ShardLimit is the most open shards all streams together may have.
	// The default is 1000.
	ShardLimit int `json:"shardLimit" yaml:"shardLimit"`
	// ShardWriteLimits enforces the per-shard write limits of provisioned
	// Kinesis (1000 records and 1 MiB per second) and the write capacity
	// of on-demand streams (stream.Config.ShardWriteLimits): records past
	// them fail with ProvisionedThroughputExceededException. Off by
	// default.
	ShardWriteLimits bool `json:"shardWriteLimits" yaml:"shardWriteLimits"`
	// TransitionDelay is how long streams report CREATING, UPDATING or
	// DELETING (stream.Config.TransitionDelay). Default 0.
	TransitionDelay time.Duration `json:"transitionDelay" yaml:"transitionDelay"`
	// ChannelDir, when set, stands for S3 in channel deliveries: the
	// bucket arn:aws:s3:::B is the folder ChannelDir/B. Default "":
	// channels write to S3.
	ChannelDir string `json:"channelDir" yaml:"channelDir"`
	// ChannelS3Endpoint is the S3-compatible endpoint channels write
	// through (path-style). Default "": AWS's, as the SDK finds it.
	ChannelS3Endpoint string `json:"channelS3Endpoint" yaml:"channelS3Endpoint"`
	// ChannelFreshness, when set, writes channel objects at least this
	// often, even when a channel's DataFreshnessInSeconds is longer.
	// Default 0: as each channel says.
	ChannelFreshness time.Duration `json:"channelFreshness" yaml:"channelFreshness"`
	// Limits is LimitsOff (the default) or LimitsAWS: the per-shard write
	// and read limits, the control-plane rate limits and the consumer
	// limit of Kinesis, answered as AWS answers them.
	Limits string `json:"limits" yaml:"limits"`
	// AuthFile is a credentials file (see auth.Load); when set, every
	// request must be signed with Signature Version 4 by one of its keys.
	// The default, "", accepts any request.
	AuthFile string `json:"authFile" yaml:"authFile"`
	// Insecure allows listening on a non-loopback address without
	// AuthFile. Off by default.
	Insecure bool `json:"insecure" yaml:"insecure"`
	// TLS serves HTTPS (HTTP/2 and HTTP/1.1) instead of HTTP. Without
	// TLSCert it uses a self-signed certificate for the loopback addresses,
	// localhost and the listen host, made once in DataDir/tls and reused.
	// Off by default.
	TLS bool `json:"tls" yaml:"tls"`
	// TLSCert and TLSKey are PEM files holding the certificate (chain) and
	// private key to serve; setting them turns TLS on. Both or neither.
	TLSCert string `json:"tlsCert" yaml:"tlsCert"`
	TLSKey  string `json:"tlsKey" yaml:"tlsKey"`
	// MetricsToken, when set, is the bearer token GET /metrics requires
	// (a dashboard login also admits). Without it /metrics is open, or,
	// with AuthFile, needs a dashboard login. The default is "".
	MetricsToken string `json:"metricsToken" yaml:"metricsToken"`
	// AllowedHosts are host names or addresses, besides the loopback ones,
	// that the Host header of a request may name when AuthFile is not set
	// (see package admit: this defeats DNS rebinding). The default is none.
	AllowedHosts []string `json:"allowedHosts" yaml:"allowedHosts"`
	// AllowedOrigins are web origins (scheme://host[:port]) whose pages may
	// call the Kinesis API from a browser (CORS), besides those always
	// admitted: pages served from this machine (a loopback origin), and,
	// with AuthFile, every origin, since each call must then be signed. The
	// dashboard stays same-origin. The default is none.
	AllowedOrigins []string `json:"allowedOrigins" yaml:"allowedOrigins"`
	// BodyTimeout is the longest a request body may pause, and the time
	// it has before BodyMinRate applies. The default is 10s.
	BodyTimeout time.Duration `json:"bodyTimeout" yaml:"bodyTimeout"`
	// BodyMinRate is the lowest average rate, in bytes a second, a request
	// body may arrive at after its first BodyTimeout. The default is
	// 65536.
	BodyMinRate int64 `json:"bodyMinRate" yaml:"bodyMinRate"`
	// BodyMemory is the most bytes the request bodies being read at once
	// may hold beyond the first 64 KiB of each (1024 such bodies at
	// most); a body needing more is refused with a 503 the AWS SDKs
	// retry. The default is 128 MiB.
	BodyMemory int64 `json:"bodyMemory" yaml:"bodyMemory"`
	// ShutdownTimeout bounds how long requests in flight may take to finish
	// once shutdown begins. The default is 10s.
	ShutdownTimeout time.Duration `json:"shutdownTimeout" yaml:"shutdownTimeout"`
	// MemTableMiB is the size of pebble's memtable in MiB; the write-ahead
	// log preallocates 110% of it per file, and writes are refused while
	// less than four memtables plus 8 MiB are free on the data dir's disk.
	// Larger takes more memory and disk for fewer flushes under sustained
	// load. The default is 16 (from 1 to 1024).
	MemTableMiB int `json:"memTableMiB" yaml:"memTableMiB"`
	// CacheMiB is the size of pebble's block cache in MiB: the tables'
	// index, filter and range deletion blocks, and recently read records.
	// The default is 64 (from 1 to 65536).
	CacheMiB int `json:"cacheMiB" yaml:"cacheMiB"`
	// Pprof serves Go's runtime profiles (net/http/pprof) under
	// /debug/pprof/, under the rules of /metrics (MetricsToken, or a
	// dashboard login with a key that may read every stream), and, with
	// neither AuthFile nor MetricsToken, to clients on this machine only.
	// Off by default.
	Pprof bool `json:"pprof" yaml:"pprof"`
}

// Defaults returns the configuration `runnel serve` uses when nothing is set.
func Defaults() Config {
	return Config{
		Listen:          "127.0.0.1:4567",
		DataDir:         "./runnel-data",
		Fsync:           FsyncAlways,
		Region:          stream.DefaultRegion,
		AccountID:       stream.DefaultAccountID,
		ShardLimit:      1000,
		Limits:          LimitsOff,
		ShutdownTimeout: 10 * time.Second,
		MemTableMiB:     storage.DefaultMemTableSize >> 20,
		CacheMiB:        storage.DefaultCacheSize >> 20,
		BodyTimeout:     10 * time.Second,
		BodyMinRate:     64 << 10,
		BodyMemory:      128 << 20,
	}
}

var (
	regionPattern    = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	accountIDPattern = regexp.MustCompile(`^[0-9]{12}$`)
)

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if host, port, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen address %q: want host:port", c.Listen))
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		errs = append(errs, fmt.Errorf("listen address %q: port must be a number from 0 to 65535", c.Listen))
	} else if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
		errs = append(errs, fmt.Errorf("listen address %q: %q is not an IP address or host name", c.Listen, host))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir must not be empty"))
	}
	if c.Fsync != FsyncAlways && c.Fsync != FsyncNever {
		errs = append(errs, fmt.Errorf("fsync %q: want %q or %q", c.Fsync, FsyncAlways, FsyncNever))
	}
	if !regionPattern.MatchString(c.Region) {
		errs = append(errs, fmt.Errorf("region %q: want a region name such as us-east-1", c.Region))
	}
	if !accountIDPattern.MatchString(c.AccountID) {
		errs = append(errs, fmt.Errorf("account id %q: want 12 digits", c.AccountID))
	}
	if c.Limits != LimitsOff && c.Limits != LimitsAWS {
		errs = append(errs, fmt.Errorf("limits %q: want %q or %q", c.Limits, LimitsAWS, LimitsOff))
	}
	if c.AuthFile == "" && !c.Insecure {
		if host, _, err := net.SplitHostPort(c.Listen); err == nil && !isLoopback(host) {
			errs = append(errs, fmt.Errorf("listen address %q is reachable from other machines: give a credentials file with --auth, or --insecure to serve without authentication", c.Listen))
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls: give both a certificate file (--tls-cert) and its key (--tls-key), or neither"))
	}
	if c.ShardLimit < 1 {
		errs = append(errs, fmt.Errorf("shard limit %d: must be at least 1", c.ShardLimit))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shutdown timeout %s: must be positive", c.ShutdownTimeout))
	}
	if c.MemTableMiB < 1 || c.MemTableMiB > 1024 {
		errs = append(errs, fmt.Errorf("memtable size %d MiB: must be from 1 to 1024", c.MemTableMiB))
	}
	if c.CacheMiB < 1 || c.CacheMiB > 65536 {
		errs = append(errs, fmt.Errorf("cache size %d MiB: must be from 1 to 65536", c.CacheMiB))
	}
	if c.BodyTimeout <= 0 {
		errs = append(errs, fmt.Errorf("body timeout %s: must be positive", c.BodyTimeout))
	}
	if c.BodyMinRate < 1 {
		errs = append(errs, fmt.Errorf("body minimum rate %d: must be at least 1 byte a second", c.BodyMinRate))
	}
	if c.BodyMemory < 1<<20 {
		errs = append(errs, fmt.Errorf("body memory %d: must be at least 1 MiB (1048576)", c.BodyMemory))
	}
	for _, h := range c.AllowedHosts {
		if net.ParseIP(strings.Trim(h, "[]")) == nil && !validHostname(h) {
			errs = append(errs, fmt.Errorf("allowed host %q: want a host name or IP address, without a port", h))
		}
	}
	for _, o := range c.AllowedOrigins {
		if u, err := url.Parse(o); err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
			errs = append(errs, fmt.Errorf("allowed origin %q: want scheme://host[:port], such as https://app.example", o))
		}
	}
	if c.ChannelFreshness < 0 || c.ChannelFreshness > 0 && c.ChannelFreshness < time.Second {
		errs = append(errs, fmt.Errorf("channel freshness %s: must be 0 (as each channel says) or at least 1s", c.ChannelFreshness))
	}
	if c.TransitionDelay < 0 || c.TransitionDelay > time.Hour {
		errs = append(errs, fmt.Errorf("transition delay %s: must be between 0 and 1h", c.TransitionDelay))
	}
	return errors.Join(errs...)
}

// Limits settings.
const (
	// LimitsOff enforces no Kinesis throughput or rate limits.
	LimitsOff = "off"
	// LimitsAWS enforces the limits Kinesis documents.
	LimitsAWS = "aws"
)

// isLoopback reports whether host names only this machine. An empty host
// listens on every interface.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

var hostnamePattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$`)

func validHostname(h string) bool { return len(h) <= 253 && hostnamePattern.MatchString(h) }
