// Package testserver starts real third-party servers for tests, each on
// 127.0.0.1 and a free port, in a t.TempDir(), stopped by t.Cleanup.
package testserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RedisServer is a running redis-server.
type RedisServer struct {
	// Addr is "127.0.0.1:<port>". With TLS it is the TLS port and the
	// server accepts no plain connections.
	Addr string
	// Dir is the server's working directory.
	Dir string

	bin    string
	cfg    RedisConfig
	port   int
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error
	out    *readyOutput
}

// RedisConfig configures RedisWithConfig.
type RedisConfig struct {
	// Password, when set, is required of clients (requirepass, the
	// "default" user's password).
	Password string
	// TLS, when set, makes the server accept TLS connections only.
	TLS *RedisTLS
	// Args are added to the redis-server command line.
	Args []string
}

// RedisTLS names PEM files for a TLS server.
type RedisTLS struct {
	CertFile, KeyFile string
	// CAFile verifies client certificates; required by redis-server even
	// when clients are not asked for one.
	CAFile string
	// ClientAuth asks clients for a certificate signed by CAFile.
	ClientAuth bool
}

// redisStartTimeout bounds one attempt to start redis-server.
const redisStartTimeout = 10 * time.Second

// redisAttempts bounds the retries when the chosen port was taken between
// choosing it and redis-server binding it.
const redisAttempts = 5

// Redis starts redis-server without persistence on a free local port.
// Without a redis-server on PATH the test is skipped, or fails when
// RUNNEL_INTEGRATION=required.
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	return RedisWithConfig(t, RedisConfig{})
}

// RedisWithConfig is Redis with a password, TLS or extra arguments.
func RedisWithConfig(t testing.TB, cfg RedisConfig) *RedisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("RUNNEL_INTEGRATION") == "required" {
			t.Fatalf("testserver: redis-server not found and RUNNEL_INTEGRATION=required: %v", err)
		}
		t.Skip("testserver: redis-server not found")
	}
	r := &RedisServer{Dir: t.TempDir(), bin: bin, cfg: cfg}
	var lastErr error
	for range redisAttempts {
		port, err := redisFreePort()
		if err != nil {
			t.Fatalf("testserver: %v", err)
		}
		r.port = port
		r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		lastErr = r.start()
		if lastErr == nil {
			t.Cleanup(func() { r.stop(t) })
			return r
		}
		if !errors.Is(lastErr, errRedisPortTaken) {
			break
		}
	}
	t.Fatalf("testserver: starting redis-server: %v", lastErr)
	return nil
}

// Stop stops the server with SIGTERM and waits for it to exit. Without
// persistence (the default) it forgets every key; with Args turning on
// the append-only file it keeps them.
func (r *RedisServer) Stop(t testing.TB) {
	t.Helper()
	r.stop(t)
}

// Start starts a stopped server again, on the same address and in the
// same directory.
func (r *RedisServer) Start(t testing.TB) {
	t.Helper()
	if err := r.start(); err != nil {
		t.Fatalf("testserver: restarting redis-server on %s: %v", r.Addr, err)
	}
}

var errRedisPortTaken = errors.New("port taken")

// redisFreePort returns a port nothing listened on a moment ago.
func redisFreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// redisReady is the line redis-server logs once it listens.
var redisReady = regexp.MustCompile(`Ready to accept connections`)

func (r *RedisServer) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return errors.New("already running")
	}
	cfg, port := r.cfg, r.port
	args := []string{
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", r.Dir,
		"--daemonize", "no",
		"--logfile", "",
	}
	if cfg.TLS != nil {
		args = append(args, "--port", "0", "--tls-port", strconv.Itoa(port),
			"--tls-cert-file", cfg.TLS.CertFile, "--tls-key-file", cfg.TLS.KeyFile,
			"--tls-ca-cert-file", cfg.TLS.CAFile,
			"--tls-auth-clients", map[bool]string{true: "yes", false: "no"}[cfg.TLS.ClientAuth])
	} else {
		args = append(args, "--port", strconv.Itoa(port))
	}
	if cfg.Password != "" {
		args = append(args, "--requirepass", cfg.Password)
	}
	args = append(args, cfg.Args...)
	cmd := exec.Command(r.bin, args...)
	cmd.Dir = r.Dir
	out := newReadyOutput(redisReady)
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-out.done:
	case err := <-exited:
		log := out.String()
		if strings.Contains(log, "Address already in use") {
			return fmt.Errorf("%w: %d", errRedisPortTaken, port)
		}
		return fmt.Errorf("redis-server exited (%v):\n%s", err, log)
	case <-time.After(redisStartTimeout):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("redis-server not ready after %v:\n%s", redisStartTimeout, out.String())
	}
	r.cmd, r.exited, r.out = cmd, exited, out
	return nil
}

// stop stops the running server, if any.
func (r *RedisServer) stop(t testing.TB) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(redisStartTimeout):
		_ = r.cmd.Process.Kill()
		<-r.exited
		t.Errorf("testserver: redis-server did not stop on SIGTERM:\n%s", r.out.String())
	}
	r.cmd = nil
}

// NewTLSFiles writes, in a t.TempDir(), a new CA and a server certificate
// it signed for 127.0.0.1 and localhost, valid for a day, and returns
// their PEM files for a TLS server.
func NewTLSFiles(t testing.TB) *RedisTLS {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "runnel test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	files := &RedisTLS{
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "server.pem"),
		KeyFile:  filepath.Join(dir, "server-key.pem"),
	}
	for path, block := range map[string]*pem.Block{
		files.CAFile:   {Type: "CERTIFICATE", Bytes: caDER},
		files.CertFile: {Type: "CERTIFICATE", Bytes: der},
		files.KeyFile:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatalf("testserver: %v", err)
		}
	}
	return files
}
