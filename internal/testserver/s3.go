package testserver

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// VersityGWVersion is the versitygw release S3 installs.
const VersityGWVersion = "v1.8.0"

// S3Server is a running S3-compatible server: versitygw with its posix
// backend, each bucket a directory under Root.
type S3Server struct {
	// URL is the endpoint, "http://127.0.0.1:<port>"; address buckets by
	// path (UsePathStyle).
	URL string
	// AccessKey and SecretKey are the root user's credentials. The
	// access key is an account id, 000000000000, because the server
	// takes it as the owner of the buckets the root user makes (and
	// checks x-amz-expected-bucket-owner against it).
	AccessKey, SecretKey string
	// Region is the region the server signs for.
	Region string
	// Root is the directory holding the buckets.
	Root string

	bin, addr string
	mu        sync.Mutex
	stop      func() // stops the running server; nil when stopped
}

// Stop stops the server (its buckets stay in Root) and waits for it to
// exit; requests then find nothing listening.
func (s *S3Server) Stop(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

// Start starts a stopped server again on the same address.
func (s *S3Server) Start(t testing.TB) {
	t.Helper()
	if err := startVersityGW(t, s.bin, s.addr, s); err != nil {
		t.Fatalf("testserver: restarting versitygw on %s: %v", s.addr, err)
	}
}

// Client returns an S3 client for the server, path-style, with the root
// credentials.
func (s *S3Server) Client() *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(s.URL),
		Region:       s.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		UsePathStyle: true,
	})
}

// CreateBucket creates a bucket.
func (s *S3Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("testserver: creating bucket %s: %v", name, err)
	}
}

// Env sets the AWS SDK environment (credentials and region) to the
// server's for the rest of the test, for code that uses the default
// credential chain.
func (s *S3Server) Env(t testing.TB) {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
	t.Setenv("AWS_REGION", s.Region)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// versityGWDir is where the versitygw binary lives: $RUNNEL_VERSITYGW,
// else <user cache dir>/runnel/versitygw (where .ci/run installs it).
func versityGWDir() (string, error) {
	if d := os.Getenv("RUNNEL_VERSITYGW"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "runnel", "versitygw"), nil
}

var installMu sync.Mutex

// versityGW returns the versitygw binary, installing it with go install
// when it is missing.
func versityGW() (string, error) {
	dir, err := versityGWDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "versitygw")
	if st, err := os.Stat(bin); err == nil && !st.IsDir() {
		return bin, nil
	}
	installMu.Lock()
	defer installMu.Unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gobin, "install", "github.com/versity/versitygw/cmd/versitygw@"+VersityGWVersion)
	// Outside any module, so the project's go.mod plays no part.
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", errors.New("go install versitygw: " + err.Error() + ": " + out.String())
	}
	return bin, nil
}

// S3 runs versitygw (posix backend on t.TempDir()) on a free 127.0.0.1
// port until the test ends, installing it first with go install when it
// is not in $RUNNEL_VERSITYGW or <user cache dir>/runnel/versitygw. It
// skips the test when versitygw cannot be had, and fails it instead when
// RUNNEL_INTEGRATION=required.
func S3(t testing.TB) *S3Server {
	t.Helper()
	bin, err := versityGW()
	if err != nil {
		msg := "versitygw is needed (go install github.com/versity/versitygw/cmd/versitygw@" + VersityGWVersion + " into ~/.cache/runnel/versitygw, or set RUNNEL_VERSITYGW): " + err.Error()
		if os.Getenv("RUNNEL_INTEGRATION") == "required" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	s := &S3Server{AccessKey: "000000000000", SecretKey: "runneltestsecret", Region: "us-east-1", Root: t.TempDir(), bin: bin}
	var lastErr error
	for range 3 {
		port, err := loopbackPort()
		if err != nil {
			t.Fatalf("testserver: finding a free port: %v", err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.addr = addr
		if lastErr = startVersityGW(t, bin, addr, s); lastErr == nil {
			s.URL = "http://" + addr
			return s
		}
	}
	t.Fatalf("testserver: versitygw: %v", lastErr)
	return nil
}

func startVersityGW(t testing.TB, bin, addr string, s *S3Server) error {
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--port", addr, "--access", s.AccessKey, "--secret", s.SecretKey, "--region", s.Region, "--quiet", "posix", s.Root)
	out := &syncWriter{w: &logs}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			s.mu.Lock()
			s.stop = stop
			s.mu.Unlock()
			t.Cleanup(func() { s.Stop(t) })
			return nil
		}
		select {
		case err := <-exited:
			return errors.New("exited before listening: " + errString(err) + ": " + logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return errors.New("not listening on " + addr + " after 20s")
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// syncWriter serializes writes from a process's stdout and stderr.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}
