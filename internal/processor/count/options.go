package count

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/runnel-dev/runnel/internal/counterstore"
	"github.com/runnel-dev/runnel/internal/options"
	"github.com/runnel-dev/runnel/internal/processor"
)

// Values of Config.Missing.
const (
	MissingEmpty  = "empty"  // a missing field renders as ""
	MissingReject = "reject" // a record missing a field is rejected
)

// Values of Config.Store.
const (
	StoreRedis = "redis" // counters in Redis (the default)
	StoreLocal = "local" // counters in runnel's own store (package counterstore)
)

// Config is the count processor's options, as pipelines.yaml gives them
// under handler.options.
type Config struct {
	// Key is the key template; required. See the package documentation.
	Key string `yaml:"key"`
	// Missing says what a missing (absent or null) template field does:
	// MissingEmpty (default) or MissingReject.
	Missing string `yaml:"missing"`
	// TimeField is the field holding the event time used by {ts:LAYOUT};
	// default: the record's arrival time.
	TimeField string `yaml:"timeField"`
	// TimeLayout parses TimeField with a Go layout; default RFC 3339,
	// "2006-01-02 15:04:05" or epoch seconds (see processor.Event.Time).
	TimeLayout string `yaml:"timeLayout"`
	// Decode says how record data is decoded; default JSON.
	Decode processor.DecodeConfig `yaml:"decode"`
	// Store is where the counts are kept: StoreRedis (default) or
	// StoreLocal, runnel's own store in `<state dir>/counts`, shown by
	// `runnel counts`. The local store has no hash, expire or redis.
	Store string `yaml:"store"`
	// Redis is where the counts are kept with StoreRedis.
	Redis RedisConfig `yaml:"redis"`
	// Counts is the open local store, with StoreLocal; set by the caller
	// (the built-in opens <state dir>/counts), not by options.
	Counts *counterstore.Store
	// Hash, when set, makes each key a field of this hash (HINCRBY)
	// instead of a key of its own (INCRBY). The key prefix applies to it.
	Hash string `yaml:"hash"`
	// Expire, when positive, sets a time to live on each key (or on the
	// hash) that has none, which is when it is created. Default: none.
	Expire time.Duration `yaml:"expire"`
	// Increment names a field whose integer value is added instead of 1.
	Increment string `yaml:"increment"`
}

// RedisConfig says how to reach Redis.
type RedisConfig struct {
	// Addr is host:port; default "127.0.0.1:6379".
	Addr string `yaml:"addr"`
	// Username and Password authenticate (AUTH); default none.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// DB is the database number; default 0.
	DB int `yaml:"db"`
	// TLS, when set, connects with TLS.
	TLS *TLSConfig `yaml:"tls"`
	// KeyPrefix is put before every key this processor writes, including
	// the hash and the per-shard markers. Default "".
	KeyPrefix string `yaml:"keyPrefix"`
}

// TLSConfig is redis.tls given as an object; `tls: true` is the zero
// value (system roots, server name from addr).
type TLSConfig struct {
	// InsecureSkipVerify accepts any server certificate.
	InsecureSkipVerify bool `yaml:"insecureSkipVerify"`
	// CAFile is a PEM file of the CAs to trust instead of the system's.
	CAFile string `yaml:"caFile"`
	// CertFile and KeyFile are a client certificate and its key (PEM),
	// both or neither.
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
	// ServerName overrides the name checked in the server certificate.
	ServerName string `yaml:"serverName"`
}

// String describes the connection without its password, for logs.
func (c RedisConfig) String() string {
	pw := ""
	if c.Password != "" {
		pw = " password=<redacted>"
	}
	return fmt.Sprintf("redis addr=%s db=%d%s", c.Addr, c.DB, pw)
}

// defaultAddr is redis.addr's default.
const defaultAddr = "127.0.0.1:6379"

// Spec declares the count processor's options.
var Spec = options.New(func(c *Config) error {
	c.Defaults()
	return c.Validate()
},
	options.Field{Name: "key", Required: true, Example: "\"{ts:2006-01-02}:{page}:{event}\"",
		Doc: "The key template: literal text with {field}, {a.b} (a dotted path) and {ts:LAYOUT} (the event time in UTC, with a Go layout) placeholders; `{{` and `}}` are literal braces."},
	options.Field{Name: "missing", Default: MissingEmpty, Enum: []string{MissingEmpty, MissingReject},
		Doc: "What a missing or null template field does: `empty` renders it as \"\", `reject` sends the record to the on-failure destination."},
	options.Field{Name: "timeField", DefaultDoc: "the record's arrival time",
		Doc: "The field holding the event time used by {ts:LAYOUT}."},
	options.Field{Name: "timeLayout", DefaultDoc: "RFC 3339, `2006-01-02 15:04:05` or epoch seconds",
		Doc: "The Go layout timeField is parsed with."},
	processor.DecodeField,
	options.Field{Name: "store", DefaultDoc: StoreRedis, Enum: []string{StoreRedis, StoreLocal},
		Doc: "Where the counts are kept: `redis`, or `local`, runnel's own store in `<state dir>/counts`, shown by `runnel counts` (no hash, expire or redis there)."},
	options.Field{Name: "redis", Doc: "How to reach Redis, with store: redis.", Fields: []options.Field{
		{Name: "addr", DefaultDoc: defaultAddr, Doc: "host:port of the Redis server."},
		{Name: "username", Doc: "The user to AUTH as (with password)."},
		{Name: "password", Doc: "The password to AUTH with."},
		{Name: "db", Default: "0", Doc: "The database number."},
		{Name: "tls", Type: "boolean or object", Switch: true, Doc: "Connect with TLS: true (system roots, server name from addr) or an object.", Fields: []options.Field{
			{Name: "insecureSkipVerify", Doc: "Accept any server certificate."},
			{Name: "caFile", Doc: "A PEM file of the CAs to trust instead of the system's."},
			{Name: "certFile", Doc: "A client certificate (PEM), with keyFile."},
			{Name: "keyFile", Doc: "The client certificate's key (PEM), with certFile."},
			{Name: "serverName", Doc: "The name checked in the server certificate."},
		}},
		{Name: "keyPrefix", Doc: "Put before every key this processor writes, including the hash and the per-shard markers."},
	}},
	options.Field{Name: "hash", DefaultDoc: "none: each key is a key of its own (INCRBY)",
		Doc: "Make each key a field of this hash (HINCRBY); the key prefix applies to it."},
	options.Field{Name: "expire", DefaultDoc: "none",
		Doc: "A time to live (at least 1s) set on each key, or on the hash, when it is created."},
	options.Field{Name: "increment", DefaultDoc: "1 per event",
		Doc: "A field whose integer value is added instead of 1."},
)

// checked is Spec for `runnel config check`, which also reads the TLS
// files.
type checked struct{ *options.Spec[Config] }

func (s checked) Check(n *yaml.Node) error {
	c, err := s.Decode(n)
	if err != nil {
		return err
	}
	_, err = c.tlsConfig()
	return err
}

// ParseOptions reads the handler options of a count pipeline, applies the
// defaults and validates them, reporting every problem with the name of
// its field. It does not read the TLS files; Check does.
func ParseOptions(opts map[string]any) (Config, error) {
	return Spec.DecodeMap(opts)
}

// Defaults fills in the defaults of unset fields.
func (c *Config) Defaults() {
	if c.Missing == "" {
		c.Missing = MissingEmpty
	}
	if c.Redis.Addr == "" && c.Store != StoreLocal {
		c.Redis.Addr = defaultAddr
	}
	if c.Decode.Format == "" {
		c.Decode.Format = processor.FormatJSON
	}
}

// Validate reports every problem of a configuration with defaults applied.
func (c *Config) Validate() error { return errors.Join(c.problems()...) }

func (c *Config) problems() []error {
	var errs []error
	if c.Key == "" {
		errs = append(errs, options.Errorf("key", "required, a template such as {ts:2006-01-02}:{page}:{event}"))
	} else if _, err := parseTemplate(c.Key); err != nil {
		errs = append(errs, options.Errorf("key", "%v", err))
	}
	switch c.Missing {
	case MissingEmpty, MissingReject:
	default:
		errs = append(errs, options.Errorf("missing", "must be %s or %s, got %q", MissingEmpty, MissingReject, c.Missing))
	}
	switch c.Store {
	case "", StoreRedis:
	case StoreLocal:
		if c.Redis != (RedisConfig{}) {
			errs = append(errs, options.Errorf("redis", "not used with store: local (counts are kept in runnel's own store)"))
		}
		if c.Hash != "" {
			errs = append(errs, options.Errorf("hash", "only with store: redis"))
		}
		if c.Expire != 0 {
			errs = append(errs, options.Errorf("expire", "only with store: redis"))
		}
	default:
		errs = append(errs, options.Errorf("store", "must be %s or %s, got %q", StoreRedis, StoreLocal, c.Store))
	}
	if c.TimeLayout != "" && c.TimeField == "" {
		errs = append(errs, options.Errorf("timeLayout", "needs timeField (the arrival time needs no layout)"))
	}
	if err := c.Decode.Validate(); err != nil {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = append(errs, j.Unwrap()...)
		} else {
			errs = append(errs, err)
		}
	}
	if c.Decode.Format == processor.FormatRaw {
		if tmpl, err := parseTemplate(c.Key); err == nil && len(tmpl.fields) > 0 {
			errs = append(errs, options.Errorf("key", "the raw format has no fields to put in a key"))
		}
		if c.TimeField != "" {
			errs = append(errs, options.Errorf("timeField", "the raw format has no fields"))
		}
		if c.Increment != "" {
			errs = append(errs, options.Errorf("increment", "the raw format has no fields"))
		}
	}
	for name, p := range map[string]string{"timeField": c.TimeField, "increment": c.Increment} {
		if p != "" && !validPath(p) {
			errs = append(errs, options.Errorf(name, "%q is not a field path (names separated by single dots)", p))
		}
	}
	if c.Expire < 0 || (c.Expire > 0 && c.Expire < time.Second) {
		errs = append(errs, options.Errorf("expire", "must be at least 1s, got %v", c.Expire))
	}
	if c.Redis.DB < 0 {
		errs = append(errs, options.Errorf("redis.db", "must not be negative, got %d", c.Redis.DB))
	}
	if c.Redis.Password == "" && c.Redis.Username != "" {
		errs = append(errs, options.Errorf("redis.password", "required with redis.username"))
	}
	if t := c.Redis.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, options.Errorf("redis.tls", "certFile and keyFile go together"))
	}
	return errs
}

// tlsConfig builds the crypto/tls configuration of redis.tls, reading its
// files; nil without TLS.
func (c *Config) tlsConfig() (*tls.Config, error) {
	t := c.Redis.TLS
	if t == nil {
		return nil, nil
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: t.InsecureSkipVerify,
		ServerName:         t.ServerName,
	}
	if cfg.ServerName == "" {
		host := c.Redis.Addr
		if i := strings.LastIndex(host, ":"); i >= 0 {
			host = host[:i]
		}
		cfg.ServerName = strings.Trim(host, "[]")
	}
	var errs []error
	if t.CAFile != "" {
		pemCA, err := os.ReadFile(t.CAFile)
		if err != nil {
			errs = append(errs, options.Errorf("redis.tls.caFile", "%v", err))
		} else {
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pemCA) {
				errs = append(errs, options.Errorf("redis.tls.caFile", "no PEM certificate in %s", t.CAFile))
			}
		}
	}
	if t.CertFile != "" && t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			errs = append(errs, options.Errorf("redis.tls.certFile, redis.tls.keyFile", "%v", err))
		} else {
			cfg.Certificates = []tls.Certificate{cert}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

// Check validates a count pipeline's options, TLS files included: what
// `runnel config check` runs.
func Check(opts map[string]any) error {
	c, err := ParseOptions(opts)
	if err != nil {
		return err
	}
	_, err = c.tlsConfig()
	return err
}
