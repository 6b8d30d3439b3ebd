// Package kinesistest runs a real runnel Kinesis API server for tests, in
// the manner of net/http/httptest: a stream engine on a temporary
// directory, served over HTTP on 127.0.0.1, with an aws-sdk-go-v2 client
// pointed at it.
package kinesistest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/runnel-dev/runnel/internal/kinesisapi"
	"github.com/runnel-dev/runnel/internal/kinesisclient"
	"github.com/runnel-dev/runnel/internal/stream"
)

// Server is a running API server.
type Server struct {
	// URL is the server's base URL, "http://127.0.0.1:<port>".
	URL string
	// Service is the engine behind the server.
	Service *stream.Service
}

// Start opens a stream engine on t.TempDir() and serves the Kinesis API on
// a free local port. Both are shut down when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartConfig(t, stream.Config{NoSync: true})
}

// StartCopy is Start on a copy of the data directory dir (a fixture
// written by an earlier version, say), which stays unchanged.
func StartCopy(t testing.TB, dir string) *Server {
	t.Helper()
	cp := t.TempDir()
	if err := os.CopyFS(cp, os.DirFS(dir)); err != nil {
		t.Fatalf("kinesistest: copying %s: %v", dir, err)
	}
	return StartConfig(t, stream.Config{Dir: cp, NoSync: true})
}

// StartConfig is Start with an engine configured by cfg, for tests that
// need a clock or limits of their own. An empty Dir becomes t.TempDir()
// and a nil Logger logs to the test log.
func StartConfig(t testing.TB, cfg stream.Config) *Server {
	t.Helper()
	if cfg.Dir == "" && !cfg.InMemory {
		cfg.Dir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	logger := cfg.Logger
	svc, err := stream.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("kinesistest: opening stream engine: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = svc.Close()
		t.Fatalf("kinesistest: listening: %v", err)
	}
	var opts []kinesisapi.Option
	if cfg.MultiRegion {
		opts = append(opts, kinesisapi.WithMultiRegion())
	}
	srv := &http.Server{
		Handler:           kinesisapi.NewHandler(svc, logger, opts...),
		ReadHeaderTimeout: 10 * time.Second,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("kinesistest: shutting down server: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("kinesistest: serving: %v", err)
		}
		if err := svc.Close(); err != nil {
			t.Errorf("kinesistest: closing stream engine: %v", err)
		}
	})
	return &Server{URL: "http://" + ln.Addr().String(), Service: svc}
}

// Client returns a Kinesis client for the server (see NewClient).
func (s *Server) Client(t testing.TB) *kinesis.Client {
	t.Helper()
	return NewClient(s.URL)
}

// NewClient returns a Kinesis client for the runnel server at url, with
// fixed credentials, region us-east-1 and runnel's HTTP client
// (kinesisclient.HTTPClient). It retries only what runnel's own clients
// leave to the SDK, connection errors (kinesisclient.ConnectionRetryer),
// so tests see every API error as the server sent it.
func NewClient(url string) *kinesis.Client {
	return kinesis.New(kinesis.Options{
		BaseEndpoint: aws.String(url),
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("runnel", "runnel", ""),
		Retryer:      kinesisclient.ConnectionRetryer(),
		HTTPClient:   kinesisclient.HTTPClient(),
	})
}

// testWriter sends server logs to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

var _ io.Writer = testWriter{}
