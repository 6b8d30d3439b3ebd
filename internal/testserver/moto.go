package testserver

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// PyClients returns the Python virtual environment that .ci/run installs
// the Python clients into (moto's server, amazon-kclpy):
// $RUNNEL_PYCLIENTS, else <user cache dir>/runnel/pyclients.
func PyClients() string {
	if p := os.Getenv("RUNNEL_PYCLIENTS"); p != "" {
		return p
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "runnel", "pyclients")
}

// Moto runs moto's server mode on a free 127.0.0.1 port until the test
// ends: one endpoint that serves DynamoDB (with global secondary indexes,
// UpdateTable and conditional writes, which the Kinesis Client Library 3
// needs and dynalite lacks), STS and CloudWatch, in memory. Its request
// log's end is shown when the test fails. It skips the test when
// moto_server is not in PyClients()/bin (see .ci/run), and fails it
// instead when RUNNEL_INTEGRATION=required.
func Moto(t testing.TB) *DynamoDBServer {
	t.Helper()
	return startMoto(t, "http")
}

// MotoTLS is Moto serving HTTPS with the given certificate and key.
func MotoTLS(t testing.TB, certFile, keyFile string) *DynamoDBServer {
	t.Helper()
	return startMoto(t, "https", "--ssl-cert", certFile, "--ssl-key", keyFile)
}

func startMoto(t testing.TB, scheme string, args ...string) *DynamoDBServer {
	t.Helper()
	bin := filepath.Join(PyClients(), "bin", "moto_server")
	if _, err := os.Stat(bin); err != nil {
		msg := "moto's server is needed: python3 -m venv ~/.cache/runnel/pyclients && ~/.cache/runnel/pyclients/bin/pip install 'moto[server]', or set RUNNEL_PYCLIENTS: " + err.Error()
		if os.Getenv("RUNNEL_INTEGRATION") == "required" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	port, err := loopbackPort()
	if err != nil {
		t.Fatalf("testserver: finding a free port: %v", err)
	}
	var logs bytes.Buffer
	out := &syncWriter{w: &logs}
	cmd := exec.Command(bin, append([]string{"-H", "127.0.0.1", "-p", strconv.Itoa(port)}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("testserver: starting moto_server: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			out.mu.Lock()
			l := strings.Split(logs.String(), "\n")
			out.mu.Unlock()
			t.Logf("moto_server log, last lines:\n%s", strings.Join(l[max(0, len(l)-40):], "\n"))
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	waitListening(t, cmd, "moto_server", addr)
	return &DynamoDBServer{URL: scheme + "://" + addr}
}
