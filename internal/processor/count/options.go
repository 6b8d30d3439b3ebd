package count

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/runnel-dev/runnel/internal/counts"
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
	StoreLocal = "local" // counters in runnel's own store (package counts)
)

// Config is the count processor's options, as pipelines.yaml gives them
// under handler.options.
type Config struct {
	// Key is the key template; required. See the package documentation.
	Key string
	// Missing says what a missing (absent or null) template field does:
	// MissingEmpty (default) or MissingReject.
	Missing string
	// TimeField is the field holding the event time used by {ts:LAYOUT};
	// default: the record's arrival time.
	TimeField string
	// TimeLayout parses TimeField with a Go layout; default RFC 3339,
	// "2006-01-02 15:04:05" or epoch seconds (see processor.Event.Time).
	TimeLayout string
	// Decode says how record data is decoded; default JSON.
	Decode processor.DecodeConfig
	// Store is where the counts are kept: StoreRedis (default) or
	// StoreLocal, runnel's own store in <state dir>/counts, shown by
	// `runnel counts`. The local store has no hash, expire or redis.
	Store string
	// Redis is where the counts are kept with StoreRedis.
	Redis RedisConfig
	// Counts is the open local store, with StoreLocal; set by the caller
	// (the built-in opens <state dir>/counts), not by options.
	Counts *counts.Store
	// Hash, when set, makes each key a field of this hash (HINCRBY)
	// instead of a key of its own (INCRBY). The key prefix applies to it.
	Hash string
	// Expire, when positive, sets a time to live on each key (or on the
	// hash) that has none, which is when it is created. Default: none.
	Expire time.Duration
	// Increment names a field whose integer value is added instead of 1.
	Increment string
}

// RedisConfig says how to reach Redis.
type RedisConfig struct {
	// Addr is host:port; default "127.0.0.1:6379".
	Addr string
	// Username and Password authenticate (AUTH); default none.
	Username string
	Password string
	// DB is the database number; default 0.
	DB int
	// TLS, when set, connects with TLS.
	TLS *TLSConfig
	// KeyPrefix is put before every key this processor writes, including
	// the hash and the per-shard markers. Default "".
	KeyPrefix string
}

// TLSConfig is redis.tls given as an object; `tls: true` is the zero
// value (system roots, server name from addr).
type TLSConfig struct {
	// InsecureSkipVerify accepts any server certificate.
	InsecureSkipVerify bool
	// CAFile is a PEM file of the CAs to trust instead of the system's.
	CAFile string
	// CertFile and KeyFile are a client certificate and its key (PEM),
	// both or neither.
	CertFile string
	KeyFile  string
	// ServerName overrides the name checked in the server certificate.
	ServerName string
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

// optionsReader reads typed values out of a map decoded from YAML,
// collecting one error per problem, each naming its field.
type optionsReader struct {
	errs []error
}

func (r *optionsReader) fail(path, format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

// unknown reports members of m not in known.
func (r *optionsReader) unknown(prefix string, m map[string]any, known ...string) {
	var names []string
	for k := range m {
		if !slices.Contains(known, k) {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for _, k := range names {
		r.fail(prefix+k, "unknown option (known: %s)", strings.Join(known, ", "))
	}
}

func (r *optionsReader) str(m map[string]any, prefix, key string) string {
	v, ok := m[key]
	if !ok || v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		r.fail(prefix+key, "must be a string, got %s", kind(v))
	}
	return s
}

func (r *optionsReader) boolean(m map[string]any, prefix, key string) bool {
	v, ok := m[key]
	if !ok || v == nil {
		return false
	}
	b, ok := v.(bool)
	if !ok {
		r.fail(prefix+key, "must be true or false, got %s", kind(v))
	}
	return b
}

func (r *optionsReader) integer(m map[string]any, prefix, key string) int {
	v, ok := m[key]
	if !ok || v == nil {
		return 0
	}
	switch x := v.(type) {
	case int:
		return x
	case int64:
		return int(x)
	case uint64:
		if x <= math.MaxInt32 {
			return int(x)
		}
	case float64:
		if x == math.Trunc(x) && math.Abs(x) <= math.MaxInt32 {
			return int(x)
		}
	}
	r.fail(prefix+key, "must be an integer, got %s", kind(v))
	return 0
}

// object returns m[key] as a map (nil when absent).
func (r *optionsReader) object(m map[string]any, prefix, key string) map[string]any {
	v, ok := m[key]
	if !ok || v == nil {
		return nil
	}
	o, ok := v.(map[string]any)
	if !ok {
		r.fail(prefix+key, "must be an object, got %s", kind(v))
	}
	return o
}

func kind(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", x)
	case bool:
		return fmt.Sprintf("%t", x)
	case int, int64, uint64, float64:
		return fmt.Sprintf("the number %v", x)
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("%T", v)
}

// ParseOptions reads the handler options of a count pipeline, applies the
// defaults and validates them, reporting every problem with the name of
// its field. It does not read the TLS files; Check does.
func ParseOptions(options map[string]any) (Config, error) {
	var r optionsReader
	r.unknown("", options, "key", "missing", "timeField", "timeLayout", "decode", "store", "redis", "hash", "expire", "increment")
	c := Config{
		Key:        r.str(options, "", "key"),
		Missing:    r.str(options, "", "missing"),
		TimeField:  r.str(options, "", "timeField"),
		TimeLayout: r.str(options, "", "timeLayout"),
		Hash:       r.str(options, "", "hash"),
		Store:      r.str(options, "", "store"),
		Increment:  r.str(options, "", "increment"),
	}
	if d := r.object(options, "", "decode"); d != nil {
		r.unknown("decode.", d, "format", "columns", "delimiter")
		c.Decode.Format = r.str(d, "decode.", "format")
		c.Decode.Delimiter = r.str(d, "decode.", "delimiter")
		if cols, ok := d["columns"]; ok && cols != nil {
			list, ok := cols.([]any)
			if !ok {
				r.fail("decode.columns", "must be a list of names, got %s", kind(cols))
			}
			for i, col := range list {
				s, ok := col.(string)
				if !ok || s == "" {
					r.fail(fmt.Sprintf("decode.columns[%d]", i), "must be a non-empty string, got %s", kind(col))
					continue
				}
				c.Decode.Columns = append(c.Decode.Columns, s)
			}
		}
	}
	if v, ok := options["expire"]; ok && v != nil {
		s, isStr := v.(string)
		d, err := time.ParseDuration(s)
		switch {
		case !isStr:
			r.fail("expire", "must be a duration such as 24h or 90m, got %s", kind(v))
		case err != nil:
			r.fail("expire", "must be a duration such as 24h or 90m, got %q", s)
		case d < time.Second:
			r.fail("expire", "must be at least 1s, got %s", s)
		default:
			c.Expire = d
		}
	}
	if rc := r.object(options, "", "redis"); rc != nil {
		if c.Store == StoreLocal {
			r.fail("redis", "not used with store: local (counts are kept in runnel's own store)")
		}
		r.unknown("redis.", rc, "addr", "username", "password", "db", "tls", "keyPrefix")
		c.Redis.Addr = r.str(rc, "redis.", "addr")
		c.Redis.Username = r.str(rc, "redis.", "username")
		c.Redis.Password = r.str(rc, "redis.", "password")
		c.Redis.DB = r.integer(rc, "redis.", "db")
		c.Redis.KeyPrefix = r.str(rc, "redis.", "keyPrefix")
		switch t := rc["tls"].(type) {
		case nil:
		case bool:
			if t {
				c.Redis.TLS = &TLSConfig{}
			}
		case map[string]any:
			r.unknown("redis.tls.", t, "insecureSkipVerify", "caFile", "certFile", "keyFile", "serverName")
			c.Redis.TLS = &TLSConfig{
				InsecureSkipVerify: r.boolean(t, "redis.tls.", "insecureSkipVerify"),
				CAFile:             r.str(t, "redis.tls.", "caFile"),
				CertFile:           r.str(t, "redis.tls.", "certFile"),
				KeyFile:            r.str(t, "redis.tls.", "keyFile"),
				ServerName:         r.str(t, "redis.tls.", "serverName"),
			}
		default:
			r.fail("redis.tls", "must be true, false or an object {insecureSkipVerify, caFile, certFile, keyFile, serverName}, got %s", kind(t))
		}
	}
	c.Defaults()
	// A field whose type was wrong is reported once, not again as empty.
	reported := map[string]bool{}
	for _, err := range r.errs {
		field, _, _ := strings.Cut(err.Error(), ": ")
		reported[field] = true
	}
	for _, err := range c.problems() {
		if field, _, _ := strings.Cut(err.Error(), ": "); !reported[field] {
			r.errs = append(r.errs, err)
		}
	}
	return c, errors.Join(r.errs...)
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
		errs = append(errs, errors.New("key: required, a template such as {ts:2006-01-02}:{page}:{event}"))
	} else if _, err := parseTemplate(c.Key); err != nil {
		errs = append(errs, fmt.Errorf("key: %w", err))
	}
	switch c.Missing {
	case MissingEmpty, MissingReject:
	default:
		errs = append(errs, fmt.Errorf("missing: must be %s or %s, got %q", MissingEmpty, MissingReject, c.Missing))
	}
	switch c.Store {
	case "", StoreRedis:
	case StoreLocal:
		if c.Hash != "" {
			errs = append(errs, errors.New("hash: only with store: redis"))
		}
		if c.Expire != 0 {
			errs = append(errs, errors.New("expire: only with store: redis"))
		}
	default:
		errs = append(errs, fmt.Errorf("store: must be %s or %s, got %q", StoreRedis, StoreLocal, c.Store))
	}
	if c.TimeLayout != "" && c.TimeField == "" {
		errs = append(errs, errors.New("timeLayout: needs timeField (the arrival time needs no layout)"))
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
			errs = append(errs, errors.New("key: the raw format has no fields to put in a key"))
		}
		if c.TimeField != "" {
			errs = append(errs, errors.New("timeField: the raw format has no fields"))
		}
		if c.Increment != "" {
			errs = append(errs, errors.New("increment: the raw format has no fields"))
		}
	}
	for name, p := range map[string]string{"timeField": c.TimeField, "increment": c.Increment} {
		if p != "" && !validPath(p) {
			errs = append(errs, fmt.Errorf("%s: %q is not a field path (names separated by single dots)", name, p))
		}
	}
	if c.Expire < 0 || (c.Expire > 0 && c.Expire < time.Second) {
		errs = append(errs, fmt.Errorf("expire: must be at least 1s, got %v", c.Expire))
	}
	if c.Redis.DB < 0 {
		errs = append(errs, fmt.Errorf("redis.db: must not be negative, got %d", c.Redis.DB))
	}
	if c.Redis.Password == "" && c.Redis.Username != "" {
		errs = append(errs, errors.New("redis.password: required with redis.username"))
	}
	if t := c.Redis.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, errors.New("redis.tls: certFile and keyFile go together"))
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
			errs = append(errs, fmt.Errorf("redis.tls.caFile: %w", err))
		} else {
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pemCA) {
				errs = append(errs, fmt.Errorf("redis.tls.caFile: no PEM certificate in %s", t.CAFile))
			}
		}
	}
	if t.CertFile != "" && t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("redis.tls.certFile, redis.tls.keyFile: %w", err))
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
func Check(options map[string]any) error {
	c, err := ParseOptions(options)
	if err != nil {
		return err
	}
	_, err = c.tlsConfig()
	return err
}
