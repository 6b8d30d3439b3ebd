package cli

import (
	"github.com/spf13/cobra"

	"github.com/runnel-dev/runnel/internal/app"
)

// serveEnv maps each serve flag to its environment variable.
var serveEnv = map[string]string{
	"listen":              "RUNNEL_LISTEN",
	"data-dir":            "RUNNEL_DATA_DIR",
	"fsync":               "RUNNEL_FSYNC",
	"region":              "RUNNEL_REGION",
	"multi-region":        "RUNNEL_MULTI_REGION",
	"account-id":          "RUNNEL_ACCOUNT_ID",
	"shard-limit":         "RUNNEL_SHARD_LIMIT",
	"shutdown-timeout":    "RUNNEL_SHUTDOWN_TIMEOUT",
	"shard-write-limits":  "RUNNEL_SHARD_WRITE_LIMITS",
	"transition-delay":    "RUNNEL_TRANSITION_DELAY",
	"limits":              "RUNNEL_LIMITS",
	"auth":                "RUNNEL_AUTH",
	"insecure":            "RUNNEL_INSECURE",
	"tls":                 "RUNNEL_TLS",
	"tls-cert":            "RUNNEL_TLS_CERT",
	"tls-key":             "RUNNEL_TLS_KEY",
	"pipelines":           "RUNNEL_PIPELINES",
	"metrics-token":       "RUNNEL_METRICS_TOKEN",
	"redis":               "RUNNEL_REDIS_ADDR",
	"memtable-mib":        "RUNNEL_MEMTABLE_MIB",
	"cache-mib":           "RUNNEL_CACHE_MIB",
	"pprof":               "RUNNEL_PPROF",
	"allow-host":          "RUNNEL_ALLOW_HOST",
	"allow-origin":        "RUNNEL_ALLOW_ORIGIN",
	"body-timeout":        "RUNNEL_BODY_TIMEOUT",
	"body-min-rate":       "RUNNEL_BODY_MIN_RATE",
	"body-memory":         "RUNNEL_BODY_MEMORY",
	"channel-dir":         "RUNNEL_CHANNEL_DIR",
	"channel-s3-endpoint": "RUNNEL_CHANNEL_S3_ENDPOINT",
	"channel-freshness":   "RUNNEL_CHANNEL_FRESHNESS",
}

func newServeCommand(e *env) *cobra.Command {
	cfg := app.Defaults()
	var pipelinesFile string
	var demo bool
	demoOpts := demoOptions{store: demoStoreAuto, rate: demoDefaultRate}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the Kinesis Data Streams API with durable local storage",
		Long: `Serve the Amazon Kinesis Data Streams API (AWS JSON 1.1 and CBOR 1.1, over
HTTP/1.1 and HTTP/2), storing records in --data-dir. Point the aws CLI or
any AWS SDK at it:

  aws kinesis --endpoint-url http://127.0.0.1:4567 list-streams

Every flag can also be set with the environment variable shown beside it;
a flag on the command line wins. Once ready, runnel logs "listening" (at info
level) with the URL it serves, including the real port when --listen ends
in :0.

The plain http:// listener takes HTTP/2 by prior knowledge (h2c), as the
JavaScript SDK v3 and the KCL send it. HTTPS, with HTTP/2 negotiated by
ALPN, comes with --tls, or --tls-cert and --tls-key. With --tls alone
runnel makes a self-signed certificate once, keeps it in
<data-dir>/tls/cert.pem and logs its path:

  AWS_CA_BUNDLE=<data-dir>/tls/cert.pem aws kinesis --endpoint-url https://127.0.0.1:4567 list-streams

The same address serves a dashboard at / (streams, shards, live rates, the
tail of a stream, pipelines), its JSON under /api/, Prometheus metrics at
/metrics, and /healthz and /readyz. With --auth the dashboard asks for an
access key and shows each key what it may read; /metrics takes
--metrics-token as a bearer token, or a login with a key that may read
every stream. Without --auth, requests must be addressed to this machine
(a loopback name or address, or --allow-host) and no browser request from
another site is answered, against DNS rebinding; pages served from this
machine, or from an --allow-origin, may call the Kinesis API (CORS).

With --demo the server also runs, on built-in defaults, what a newcomer
wants to see: the stream clickstream (4 shards), the clickstream generator
putting web-store click events into it (--demo-rate a second; start and
stop it on the dashboard), and two pipelines: clickstream-counter counts
events by minute, page and event type, into Redis when --redis is given or
127.0.0.1:6379 answers, otherwise into runnel's own store (runnel counts
shows them), and clickstream-archive writes every event to
<data-dir>/archive, in Hive-style folders, every 10 seconds.

SIGINT or SIGTERM stop the server: requests in flight finish (up to
--shutdown-timeout), then storage is closed.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags(), e.getenv, serveEnv); err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return &usageError{err}
			}
			if demo {
				if pipelinesFile != "" {
					return usagef("--demo runs its own pipelines; it does not go with --pipelines")
				}
				if cmd.Flags().Changed("redis") && demoOpts.redis == "" && demoOpts.store == demoStoreAuto {
					demoOpts.store = demoStoreLocal // --redis "": no Redis
				}
				return e.serveDemo(cmd.Context(), cfg, demoOpts)
			}
			if pipelinesFile != "" {
				return e.serveWithPipelines(cmd.Context(), cfg, pipelinesFile)
			}
			return e.serve(cmd.Context(), cfg, e.logger)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "address to listen on; port 0 picks a free port [$RUNNEL_LISTEN]")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory holding the stream data [$RUNNEL_DATA_DIR]")
	f.StringVar(&cfg.Fsync, "fsync", cfg.Fsync, `when a put is acknowledged: "always" after its write-ahead log is fsynced to disk
(concurrent puts share one fsync), "never" once it is written to the operating
system, which survives a crash of runnel but not a power loss or kernel crash [$RUNNEL_FSYNC]`)
	f.StringVar(&cfg.Region, "region", cfg.Region, "region in stream ARNs [$RUNNEL_REGION]")
	f.StringVar(&cfg.AccountID, "account-id", cfg.AccountID, "account id in stream ARNs [$RUNNEL_ACCOUNT_ID]")
	f.BoolVar(&cfg.MultiRegion, "multi-region", cfg.MultiRegion, "scope streams by the region each request is signed for and its key's account, so one server stands in for several [$RUNNEL_MULTI_REGION]")
	f.IntVar(&cfg.ShardLimit, "shard-limit", cfg.ShardLimit, "most open shards all streams together may have [$RUNNEL_SHARD_LIMIT]")
	f.BoolVar(&cfg.ShardWriteLimits, "shard-write-limits", cfg.ShardWriteLimits, "enforce Kinesis write limits: per shard of a provisioned stream (1000 records/s, 1 MiB/s), per on-demand stream its write capacity (4 MiB/s at first, scaling to double its peak; warm throughput) [$RUNNEL_SHARD_WRITE_LIMITS]")
	f.StringVar(&pipelinesFile, "pipelines", "", "also run the pipelines of this file (as runnel run does) against this server, with their state in <data-dir>/pipelines [$RUNNEL_PIPELINES]")
	f.StringVar(&cfg.Limits, "limits", cfg.Limits, `"aws" enforces the Kinesis limits: per-shard writes (1000 records/s, 1 MiB/s) and
reads (5 calls/s, 2 MiB/s), control-plane call rates and 20 consumers per stream,
answered as AWS answers them; "off" enforces none [$RUNNEL_LIMITS]`)
	f.StringVar(&cfg.AuthFile, "auth", cfg.AuthFile, `credentials file (YAML: keys with id, secret, and all: true or put/read
stream lists); requests must then be signed with AWS Signature Version 4 [$RUNNEL_AUTH]`)
	f.BoolVar(&cfg.Insecure, "insecure", cfg.Insecure, "allow listening on a non-loopback address without --auth [$RUNNEL_INSECURE]")
	f.BoolVar(&cfg.TLS, "tls", cfg.TLS, `serve HTTPS (HTTP/2 and HTTP/1.1) with a self-signed certificate made once in
<data-dir>/tls; its path is logged at start for clients to trust [$RUNNEL_TLS]`)
	f.StringVar(&cfg.TLSCert, "tls-cert", cfg.TLSCert, "serve HTTPS with this PEM certificate (chain); needs --tls-key [$RUNNEL_TLS_CERT]")
	f.StringVar(&cfg.TLSKey, "tls-key", cfg.TLSKey, "PEM private key of --tls-cert [$RUNNEL_TLS_KEY]")
	f.StringVar(&cfg.MetricsToken, "metrics-token", cfg.MetricsToken, `bearer token GET /metrics requires ("Authorization: Bearer <token>"); without it
/metrics is open, or with --auth needs a dashboard login with a key that may read
every stream [$RUNNEL_METRICS_TOKEN]`)
	f.StringSliceVar(&cfg.AllowedHosts, "allow-host", cfg.AllowedHosts, `without --auth, a host name or address (no port) requests may name in their Host
header besides the loopback ones; repeat or separate with commas. Others are
refused, against DNS rebinding [$RUNNEL_ALLOW_HOST]`)
	f.StringSliceVar(&cfg.AllowedOrigins, "allow-origin", cfg.AllowedOrigins, `a web origin (scheme://host[:port]) whose pages may call the Kinesis API from a
browser (CORS); repeat or separate with commas. Pages served from this machine
(loopback origins) may always, and with --auth every origin may [$RUNNEL_ALLOW_ORIGIN]`)
	f.DurationVar(&cfg.BodyTimeout, "body-timeout", cfg.BodyTimeout, "longest a request body may pause, and the time it has before --body-min-rate applies [$RUNNEL_BODY_TIMEOUT]")
	f.Int64Var(&cfg.BodyMinRate, "body-min-rate", cfg.BodyMinRate, "lowest average rate, in bytes a second, a request body may arrive at after --body-timeout [$RUNNEL_BODY_MIN_RATE]")
	f.Int64Var(&cfg.BodyMemory, "body-memory", cfg.BodyMemory, `bytes all request bodies being read at once may hold beyond the first 64 KiB of
each; a body needing more is refused with 503, which the AWS SDKs retry [$RUNNEL_BODY_MEMORY]`)
	f.BoolVar(&demo, "demo", false, "also run the clickstream generator and the demo's counter and archive pipelines (see above)")
	f.StringVar(&demoOpts.store, "demo-store", demoOpts.store, `where --demo counts: "redis", "local" (runnel's own store, shown by runnel counts),
or "auto": Redis when --redis is set or 127.0.0.1:6379 answers, else local`)
	f.StringVar(&demoOpts.redis, "redis", "", "Redis address (host:port) --demo counts into; --redis \"\" counts in the local store [$RUNNEL_REDIS_ADDR]")
	f.Float64Var(&demoOpts.rate, "demo-rate", demoOpts.rate, "events per second the --demo generator puts")
	f.StringVar(&cfg.ChannelDir, "channel-dir", cfg.ChannelDir, `deliver channels (CreateChannel) to folders of this directory instead of S3: the
bucket arn:aws:s3:::B is the folder <channel-dir>/B [$RUNNEL_CHANNEL_DIR]`)
	f.StringVar(&cfg.ChannelS3Endpoint, "channel-s3-endpoint", cfg.ChannelS3Endpoint, `S3-compatible endpoint URL channels write their buckets through (path-style);
default AWS's, as the AWS SDK finds it (AWS_ENDPOINT_URL_S3) [$RUNNEL_CHANNEL_S3_ENDPOINT]`)
	f.DurationVar(&cfg.ChannelFreshness, "channel-freshness", cfg.ChannelFreshness, `write channel objects at least this often, even when a channel's
DataFreshnessInSeconds (300-900) is longer; 0 keeps each channel's [$RUNNEL_CHANNEL_FRESHNESS]`)
	f.DurationVar(&cfg.TransitionDelay, "transition-delay", cfg.TransitionDelay, "how long a stream reports CREATING, UPDATING or DELETING after it is created, resharded, updated or deleted, as AWS takes time to; settings apply at once, a new shard layout when the stream is ACTIVE again [$RUNNEL_TRANSITION_DELAY]")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long requests in flight may take to finish on shutdown [$RUNNEL_SHUTDOWN_TIMEOUT]")
	f.IntVar(&cfg.MemTableMiB, "memtable-mib", cfg.MemTableMiB, `pebble memtable size in MiB: each write-ahead log file preallocates 110% of it and
writes pause while less than 4 memtables + 8 MiB are free on disk; larger means fewer
flushes under sustained load, for more memory and disk [$RUNNEL_MEMTABLE_MIB]`)
	f.IntVar(&cfg.CacheMiB, "cache-mib", cfg.CacheMiB, `pebble block cache size in MiB: the tables' index and range deletion blocks and
recently read records; too small for the tables held, and reads and retention passes
read them from disk again [$RUNNEL_CACHE_MIB]`)
	f.BoolVar(&cfg.Pprof, "pprof", cfg.Pprof, `serve Go's CPU, heap and other profiles under /debug/pprof/ (go tool pprof), as
/metrics is served; without --auth or --metrics-token to this machine only [$RUNNEL_PPROF]`)
	return cmd
}
