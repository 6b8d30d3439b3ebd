package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesisclient"
)

func tlsConfig(t *testing.T, dir string) Config {
	t.Helper()
	cfg := Defaults()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = dir
	cfg.Fsync = FsyncNever
	cfg.TLS = true
	cfg.ShutdownTimeout = 30 * time.Second
	return cfg
}

// trusting returns an HTTP client that trusts only certFile.
func trusting(t *testing.T, certFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(certFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
	}}
}

// TestTLSSubscribeOverHTTP2 serves HTTPS with the generated certificate
// and runs aws-sdk-go-v2's SubscribeToShard over HTTP/2 (negotiated by
// ALPN) against it; a shutdown then ends the subscription at once.
func TestTLSSubscribeOverHTTP2(t *testing.T) {
	cfg := tlsConfig(t, t.TempDir())
	s, err := New(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	require.Equal(t, filepath.Join(cfg.DataDir, "tls", "cert.pem"), s.CertFile())
	require.True(t, strings.HasPrefix(s.URL(), "https://127.0.0.1:"), s.URL())
	subscribeOverHTTP2(t, s, func() *http.Client { return trusting(t, s.CertFile()) })
}

// TestPlainSubscribeOverHTTP2 does the same on the plain listener with
// HTTP/2 by prior knowledge (h2c), as the JavaScript SDK v3, the Java SDK
// v2 and the KCL speak to an http:// endpoint, while HTTP/1.1 clients keep
// working on the same port.
func TestPlainSubscribeOverHTTP2(t *testing.T) {
	cfg := tlsConfig(t, t.TempDir())
	cfg.TLS = false
	s, err := New(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(s.URL(), "http://127.0.0.1:"), s.URL())
	h2c := func() *http.Client {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		return &http.Client{Transport: &http.Transport{Protocols: &p}}
	}
	subscribeOverHTTP2(t, s, h2c)
}

// TestTLSHTTP2WithoutALPN starts HTTP/2 over TLS with no ALPN, as the AWS
// SDK for Java v2 (and so the KCL) does by default: the server must answer
// the connection preface with its SETTINGS frame, not with HTTP/1.1.
func TestTLSHTTP2WithoutALPN(t *testing.T) {
	s, err := New(t.Context(), tlsConfig(t, t.TempDir()), slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		require.NoError(t, <-done)
	})

	pem, err := os.ReadFile(s.CertFile())
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	conn, err := tls.Dial("tcp", s.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	require.NoError(t, err)
	defer conn.Close()
	require.Empty(t, conn.ConnectionState().NegotiatedProtocol)
	require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second)))

	// The preface, then an empty SETTINGS frame (length 0, type 4).
	_, err = conn.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"))
	require.NoError(t, err)
	header := make([]byte, 9)
	_, err = io.ReadFull(conn, header)
	require.NoError(t, err)
	require.Equal(t, byte(4), header[3], "the first frame is SETTINGS, got %q", header)
}

// subscribeOverHTTP2 runs s, checks that a plain request from newHTTP's
// client speaks HTTP/2, subscribes to a shard with aws-sdk-go-v2 through
// such a client while putting ten records, and checks that shutdown ends
// the live subscription at once.
func subscribeOverHTTP2(t *testing.T, s *Server, newHTTP func() *http.Client) {
	t.Helper()
	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	ctx := t.Context()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL(), strings.NewReader(`{}`))
	require.NoError(t, err)
	req.Header.Set("X-Amz-Target", "Kinesis_20131202.ListStreams")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp, err := newHTTP().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, 2, resp.ProtoMajor, "the client must be speaking HTTP/2")
	{
		// HTTP/1.1 clients keep working on the same listener.
		h1, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL(), strings.NewReader(`{}`))
		require.NoError(t, err)
		h1.Header = req.Header.Clone()
		tr := &http.Transport{}
		if cert := s.CertFile(); cert != "" {
			tr = trusting(t, cert).Transport.(*http.Transport)
			tr.ForceAttemptHTTP2 = false
		}
		resp, err := (&http.Client{Transport: tr}).Do(h1)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, 1, resp.ProtoMajor)
	}

	newClient := func() *kinesis.Client {
		return kinesis.New(kinesis.Options{
			BaseEndpoint: aws.String(s.URL()), Region: "us-east-1", Retryer: kinesisclient.ConnectionRetryer(), HTTPClient: newHTTP(),
			Credentials: credentials.NewStaticCredentialsProvider("runnel", "runnel", ""),
		})
	}
	c := newClient()
	_, err = c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	reg, err := c.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{
		StreamARN: aws.String("arn:aws:kinesis:us-east-1:000000000000:stream/s"), ConsumerName: aws.String("app"),
	})
	require.NoError(t, err)
	sub, err := newClient().SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{
		ConsumerARN: reg.Consumer.ConsumerARN, ShardId: aws.String("shardId-000000000000"),
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeLatest},
	})
	require.NoError(t, err)
	es := sub.GetStream()
	defer es.Close()

	var want []string
	for i := range 10 {
		out, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte{byte(i)}})
		require.NoError(t, err)
		want = append(want, aws.ToString(out.SequenceNumber))
	}
	var got []string
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for len(got) < len(want) {
		select {
		case ev, ok := <-es.Events():
			require.True(t, ok, "stream ended: %v", es.Err())
			for _, r := range ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent).Value.Records {
				got = append(got, aws.ToString(r.SequenceNumber))
			}
		case <-timeout.C:
			t.Fatalf("received %d of %d records", len(got), len(want))
		}
	}
	require.Equal(t, want, got)

	// Shutdown ends the live subscription instead of waiting out its
	// five minutes (or the 30 s shutdown timeout).
	began := time.Now()
	stop()
	for open := true; open; {
		select {
		case _, open = <-es.Events():
		case <-timeout.C:
			t.Fatal("subscription outlived shutdown")
		}
	}
	require.NoError(t, es.Err())
	require.NoError(t, <-done)
	require.Less(t, time.Since(began), 10*time.Second)
}

// TestTLSCertificateReusedAndRenewed checks that the self-signed
// certificate survives restarts, is replaced when it no longer covers the
// listen host or is near expiry, and that --tls-cert/--tls-key serve a
// given pair.
func TestTLSCertificateReusedAndRenewed(t *testing.T) {
	dir := t.TempDir()
	cfg := tlsConfig(t, dir)
	now := time.Now()
	_, certFile, err := cfg.serverTLS(now)
	require.NoError(t, err)
	first, err := os.ReadFile(certFile)
	require.NoError(t, err)
	info, err := os.Stat(filepath.Join(dir, "tls", "key.pem"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	_, _, err = cfg.serverTLS(now.Add(time.Hour))
	require.NoError(t, err)
	again, err := os.ReadFile(certFile)
	require.NoError(t, err)
	require.Equal(t, first, again, "a valid certificate is reused")

	cert := parseCert(t, certFile)
	require.ElementsMatch(t, []string{"127.0.0.1", "::1"}, ipStrings(cert.IPAddresses))
	require.Contains(t, cert.DNSNames, "localhost")
	require.True(t, cert.IsCA)

	_, _, err = cfg.serverTLS(cert.NotAfter.Add(-time.Hour))
	require.NoError(t, err)
	renewed, err := os.ReadFile(certFile)
	require.NoError(t, err)
	require.NotEqual(t, first, renewed, "a certificate near expiry is replaced")

	cfg.Listen = "runnel.internal:0"
	_, _, err = cfg.serverTLS(now)
	require.NoError(t, err)
	require.Contains(t, parseCert(t, certFile).DNSNames, "runnel.internal")

	given := Defaults()
	given.DataDir = t.TempDir()
	given.TLSCert, given.TLSKey = certFile, filepath.Join(dir, "tls", "key.pem")
	require.NoError(t, given.Validate())
	conf, trust, err := given.serverTLS(now)
	require.NoError(t, err)
	require.Equal(t, certFile, trust)
	require.Equal(t, []string{"h2", "http/1.1"}, conf.NextProtos)
	_, err = os.Stat(filepath.Join(given.DataDir, "tls"))
	require.ErrorIs(t, err, os.ErrNotExist, "no certificate is made when one is given")

	given.TLSKey = ""
	require.ErrorContains(t, given.Validate(), "--tls-key")
}

func parseCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	conf, err := tls.LoadX509KeyPair(file, filepath.Join(filepath.Dir(file), "key.pem"))
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(conf.Certificate[0])
	require.NoError(t, err)
	return cert
}

func ipStrings[T interface{ String() string }](ips []T) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}
