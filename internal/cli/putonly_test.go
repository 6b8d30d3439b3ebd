package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/producer/producertest"
	"github.com/runnel-dev/runnel/internal/runneltest"
)

// A device key that may only put to one stream drives `runnel produce
// sensor` (no DescribeStreamSummary or ListShards right needed), and a
// key added to the credentials file works after SIGHUP, without a
// restart; a broken file keeps the keys in use and the log says why.
func TestProduceSensorWithPutOnlyKeyAndKeysReloadedOnHangup(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	t.Parallel()
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys.yaml")
	require.NoError(t, os.WriteFile(keys, []byte(`keys:
  - {id: AKIAADMIN, secret: admin-secret, all: true}
  - {id: AKIADEVICE1, secret: device-secret, put: [sensors]}
`), 0o600))
	srv := runneltest.Serve(t, "--data-dir", filepath.Join(dir, "data"), "--fsync", "never", "--auth", keys)
	admin := kinesis.New(kinesis.Options{
		BaseEndpoint: aws.String(srv.URL), Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIAADMIN", "admin-secret", ""),
	})
	producertest.CreateStream(t, admin, "sensors", 2)

	produce := func(id, secret string, count int) *runneltest.Process {
		t.Helper()
		env := []string{"AWS_ACCESS_KEY_ID=" + id, "AWS_SECRET_ACCESS_KEY=" + secret, "AWS_REGION=us-east-1"}
		p := runneltest.Start(t, env, "--endpoint", srv.URL, "produce", "sensor", "sensors",
			"--name", "Shadowfax", "--name", "Bucephalus", "--interval", "1ms", "--count", strconv.Itoa(count), "--json")
		select {
		case <-p.Done():
		case <-time.After(time.Minute):
			t.Fatalf("produce sensor did not end within a minute:\n%s", p.Stderr())
		}
		return p
	}
	p := produce("AKIADEVICE1", "device-secret", 40)
	require.NoError(t, p.Err(), p.Stderr())
	require.Contains(t, p.Stdout(), `"delivered":40`)
	require.Len(t, producertest.ReadAll(t, admin, "sensors"), 40)

	// A key not yet in the file is refused...
	p = produce("AKIADEVICE2", "second-secret", 5)
	require.Error(t, p.Err())
	// ...a broken file is not loaded...
	require.NoError(t, os.WriteFile(keys, []byte("keys:\n  - {id: AKIADEVICE2, put: [sensors]}\n"), 0o600))
	require.NoError(t, srv.Signal(syscall.SIGHUP))
	srv.WaitFor(t, regexp.MustCompile(`SIGHUP: keeping the keys in use.*secret must not be empty`), 30*time.Second)
	p = produce("AKIADEVICE1", "device-secret", 5)
	require.NoError(t, p.Err(), p.Stderr())
	// ...and once the file is right, the new key puts.
	require.NoError(t, os.WriteFile(keys, []byte(`keys:
  - {id: AKIAADMIN, secret: admin-secret, all: true}
  - {id: AKIADEVICE2, secret: second-secret, put: [sensors]}
`), 0o600))
	require.NoError(t, srv.Signal(syscall.SIGHUP))
	srv.WaitFor(t, regexp.MustCompile(`SIGHUP: credentials file reloaded.*keys=2`), 30*time.Second)
	p = produce("AKIADEVICE2", "second-secret", 5)
	require.NoError(t, p.Err(), p.Stderr())
	require.Len(t, producertest.ReadAll(t, admin, "sensors"), 50)
	// The removed key is refused from then on.
	p = produce("AKIADEVICE1", "device-secret", 5)
	require.Error(t, p.Err())
}
