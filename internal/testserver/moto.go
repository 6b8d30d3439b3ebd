package testserver

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
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

// motoReady is the line moto's server prints once it listens.
var motoReady = regexp.MustCompile(`Running on https?://(127\.0\.0\.1:\d+)`)

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
	// Port 0: moto's server takes a free port and prints it.
	cmd := exec.Command(bin, append([]string{"-H", "127.0.0.1", "-p", "0"}, args...)...)
	out := newReadyOutput(motoReady)
	exited, err := startReady(cmd, out, 20*time.Second)
	if err != nil {
		t.Fatalf("testserver: moto_server: %v", err)
	}
	killAtCleanup(t, "moto_server", cmd, exited, out)
	addr := out.Match()[1]
	return &DynamoDBServer{URL: scheme + "://" + addr}
}
