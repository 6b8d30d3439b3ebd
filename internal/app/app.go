package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/runnel-dev/runnel/internal/admit"
	"github.com/runnel-dev/runnel/internal/auth"
	"github.com/runnel-dev/runnel/internal/channel"
	"github.com/runnel-dev/runnel/internal/kinesisapi"
	"github.com/runnel-dev/runnel/internal/stream"
)

// Server is a started but not yet serving `runnel serve`: its engine is open
// and its listener bound. Call Run exactly once; Run releases everything.
type Server struct {
	cfg    Config
	logger *slog.Logger
	svc    *stream.Service
	ln     net.Listener
	keys   *auth.Keys // nil without authentication
	// tls and certFile are set when serving HTTPS; certFile is the
	// certificate clients should trust.
	tls      *tls.Config
	certFile string
	// obs is the metrics registry and the dashboard.
	obs observability
	// ready is set while the server serves (GET /readyz).
	ready atomic.Bool
	// adm admits requests (Host, Origin) and reads their bodies.
	adm *admit.Admission
	// channels delivers the Kinesis channels.
	channels *channel.Runner
}

// maxHeaderBytes bounds a request's header block (net/http adds 4 KiB).
const maxHeaderBytes = 64 << 10

// apiOptions are the Kinesis API options the configuration asks for.
func (s *Server) apiOptions() []kinesisapi.Option {
	opts := []kinesisapi.Option{
		kinesisapi.WithShardLimit(s.cfg.ShardLimit),
		kinesisapi.WithAccount(s.cfg.Region, s.cfg.AccountID),
	}
	if s.keys != nil {
		opts = append(opts, kinesisapi.WithAuth(s.keys))
	}
	if s.cfg.Limits == LimitsAWS {
		opts = append(opts, kinesisapi.WithAWSLimits())
	}
	if s.cfg.MultiRegion {
		opts = append(opts, kinesisapi.WithMultiRegion())
	}
	opts = append(opts, kinesisapi.WithBodies(s.adm.Bodies), kinesisapi.WithChannelCheck(s.channels.Check))
	return opts
}

// New validates cfg, opens the stream engine and binds the listener. It
// gives up opening the engine when ctx is done.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	var keys *auth.Keys
	if cfg.AuthFile != "" {
		k, err := auth.Load(cfg.AuthFile)
		if err != nil {
			return nil, err
		}
		keys = k
	}
	svc, err := stream.Open(ctx, stream.Config{
		Dir:              cfg.DataDir,
		NoSync:           cfg.Fsync == FsyncNever,
		MemTableSize:     int64(cfg.MemTableMiB) << 20,
		CacheSize:        int64(cfg.CacheMiB) << 20,
		Region:           cfg.Region,
		AccountID:        cfg.AccountID,
		MultiRegion:      cfg.MultiRegion,
		ShardLimit:       cfg.ShardLimit,
		ShardWriteLimits: cfg.ShardWriteLimits || cfg.Limits == LimitsAWS,
		ShardReadLimits:  cfg.Limits == LimitsAWS,
		TransitionDelay:  cfg.TransitionDelay,
		Logger:           logger.With("component", "stream"),
	})
	if err != nil {
		return nil, fmt.Errorf("opening data dir %s: %w", cfg.DataDir, err)
	}
	s := &Server{cfg: cfg, logger: logger, svc: svc, keys: keys}
	if cfg.tlsEnabled() {
		s.tls, s.certFile, err = cfg.serverTLS(time.Now())
	}
	if err == nil {
		err = s.newObservability()
	}
	if err == nil {
		s.channels = channel.New(svc, channel.Config{
			StateDir:     filepath.Join(cfg.DataDir, "channels"),
			Dir:          cfg.ChannelDir,
			S3Endpoint:   cfg.ChannelS3Endpoint,
			MaxFreshness: cfg.ChannelFreshness,
			Region:       cfg.Region,
			Logger:       logger.With("component", "channels"),
			Observer:     s.obs.pipelines,
		})
		s.SetPipelines(nil)
	}
	if err == nil {
		s.ln, err = net.Listen("tcp", cfg.Listen)
		if err != nil {
			err = fmt.Errorf("listening on %s: %w", cfg.Listen, err)
		}
	}
	if err != nil {
		if cerr := svc.Close(); cerr != nil {
			logger.Error("closing stream engine", "err", cerr)
		}
		return nil, err
	}
	return s, nil
}

// reloadKeysOnHangup reloads the credentials file on each SIGHUP until ctx
// ends. A file that does not load keeps the keys in use, and the log says
// why.
func (s *Server) reloadKeysOnHangup(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			k, err := auth.Load(s.cfg.AuthFile)
			if err != nil {
				s.logger.Warn("SIGHUP: keeping the keys in use; the credentials file did not load", "file", s.cfg.AuthFile, "err", err)
				continue
			}
			s.keys.Replace(k)
			s.logger.Info("SIGHUP: credentials file reloaded", "file", s.cfg.AuthFile, "keys", k.Len())
		}
	}
}

// Addr is the address the server listens on, with the real port when the
// configuration asked for port 0.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Engine is the server's stream engine, for in-process readers and writers
// (pipelines inside serve) that skip HTTP.
func (s *Server) Engine() *stream.Service { return s.svc }

// serverProtocols are the HTTP versions the listener speaks: HTTP/1.1 and
// HTTP/2 on both listeners, HTTP/2 negotiated by ALPN or with prior
// knowledge, which is how the JavaScript SDK v3 and the KCL send every call
// to an http:// endpoint, and the Java SDK v2 and the KCL to an https://
// one (see tlsListener).
func serverProtocols() *http.Protocols {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	return &p
}

// URL is the endpoint clients should use, e.g. http://127.0.0.1:4567, or
// https://127.0.0.1:4567 with TLS.
func (s *Server) URL() string {
	if s.tls != nil {
		return "https://" + s.ln.Addr().String()
	}
	return "http://" + s.ln.Addr().String()
}

// CertFile is the certificate a client should trust (AWS_CA_BUNDLE,
// NODE_EXTRA_CA_CERTS) when serving HTTPS, "" otherwise.
func (s *Server) CertFile() string { return s.certFile }

// Run serves the Kinesis API until ctx is done or serving fails. On the way
// out it lets requests in flight finish (up to ShutdownTimeout), then closes
// the engine. A shutdown caused by ctx returns nil.
func (s *Server) Run(ctx context.Context) error {
	api := kinesisapi.NewHandler(s.svc, s.logger.With("component", "api"), s.apiOptions()...)
	srv := &http.Server{
		Handler:           s.routes(api),
		TLSConfig:         s.tls,
		ReadHeaderTimeout: 10 * time.Second,
		// Kinesis requests carry a few hundred bytes of headers.
		MaxHeaderBytes: maxHeaderBytes,
		IdleTimeout:    2 * time.Minute,
		ErrorLog:       slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
		Protocols:      serverProtocols(),
	}

	// One server-lifetime context, ended when shutdown begins: every
	// request's context derives from it, so SubscribeToShard responses
	// and dashboard tails (server-sent events) end then instead of holding
	// the shutdown for its whole timeout. A put already handed to storage
	// still gets its answer (see stream.Service.Put).
	life, endLife := context.WithCancelCause(context.WithoutCancel(ctx))
	defer endLife(nil)
	srv.BaseContext = func(net.Listener) context.Context { return life }
	if subs, ok := api.(interface{ EndSubscriptions() }); ok {
		// Refuse new subscriptions from then on, too.
		context.AfterFunc(life, subs.EndSubscriptions)
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.obs.dash.Run(gctx) })
	g.Go(func() error { return s.channels.Run(gctx) })
	if s.keys != nil {
		g.Go(func() error { s.reloadKeysOnHangup(gctx); return nil })
	}
	s.ready.Store(true)
	g.Go(func() error {
		var err error
		if s.tls != nil {
			err = srv.Serve(tlsListener{s.ln, s.tls})
		} else {
			err = srv.Serve(s.ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serving %s: %w", s.ln.Addr(), err)
	})
	g.Go(func() error {
		<-gctx.Done()
		s.ready.Store(false)
		s.logger.Info("shutting down", "cause", context.Cause(gctx))
		endLife(http.ErrServerClosed)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), s.cfg.ShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			// Requests still running past the deadline are cut off.
			closeErr := srv.Close()
			return errors.Join(fmt.Errorf("waiting for requests in flight: %w", err), closeErr)
		}
		return nil
	})
	if s.tls != nil {
		s.logger.Info("serving HTTPS; clients trust the certificate with AWS_CA_BUNDLE or NODE_EXTRA_CA_CERTS", "cert_file", s.certFile)
	}
	s.logger.Info("listening", "url", s.URL(), "data_dir", s.cfg.DataDir, "fsync", s.cfg.Fsync,
		"auth", s.keys != nil, "limits", s.cfg.Limits)

	err := g.Wait()
	// Closing waits for appends in flight; a write storage cannot finish
	// (a stall that never ends) must not hold the process: everything
	// acknowledged is in the log already.
	closed := make(chan error, 1)
	go func() { closed <- s.svc.Close() }()
	select {
	case cerr := <-closed:
		if cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing stream engine: %w", cerr))
		}
	case <-time.After(s.cfg.ShutdownTimeout):
		err = errors.Join(err, fmt.Errorf("closing stream engine: a write still in storage after %s (%v); exiting without it", s.cfg.ShutdownTimeout, s.svc.Health()))
	}
	if err == nil {
		s.logger.Info("stopped")
	}
	return err
}

// Run opens everything cfg describes and serves until ctx is done.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	s, err := New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}
