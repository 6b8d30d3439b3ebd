package clients

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// boto3Python returns a Python interpreter that can import boto3 (the one on
// PATH, else Debian's), skipping the test when there is none unless
// RUNNEL_INTEGRATION=required.
func boto3Python(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"python3", "/usr/bin/python3"} {
		p, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		if exec.Command(p, "-c", "import boto3").Run() == nil {
			return p
		}
	}
	if os.Getenv("RUNNEL_INTEGRATION") == "required" {
		t.Fatal("a python3 with boto3 is required (RUNNEL_INTEGRATION=required); install python3-boto3")
	}
	t.Skip("no python3 with boto3; set RUNNEL_INTEGRATION=required to make this a failure")
	return ""
}

// TestBoto3 drives `runnel serve --auth ... --limits aws` with boto3:
// create, put, get, stream settings, a put-only key and delete.
func TestBoto3(t *testing.T) {
	t.Parallel()
	python := boto3Python(t)
	keys := filepath.Join(t.TempDir(), "keys.yaml")
	require.NoError(t, os.WriteFile(keys, []byte(`keys:
  - id: AKIDSCENARIOADMIN
    secret: admin-secret-for-the-scenario
    all: true
  - id: AKIDSCENARIODEVICE
    secret: device-secret-for-the-scenario
    put: [clicks]
`), 0o600))
	srv := startServer(t, "--auth", keys, "--limits", "aws")

	env := append(clientEnv(t),
		"ADMIN_ID=AKIDSCENARIOADMIN", "ADMIN_SECRET=admin-secret-for-the-scenario",
		"DEVICE_ID=AKIDSCENARIODEVICE", "DEVICE_SECRET=device-secret-for-the-scenario",
	)
	res := runCmd(t, env, nil, python, filepath.Join("testdata", "boto3_scenario.py"), srv.URL)
	require.Equal(t, 0, res.code, "boto3 scenario failed:\n%s\nserver log:\n%s", res.stderr, srv.Stderr())

	var out struct {
		Status             string   `json:"status"`
		OpenShards         int      `json:"open_shards"`
		PutShard           string   `json:"put_shard"`
		BatchFailed        int      `json:"batch_failed"`
		DevicePutShard     string   `json:"device_put_shard"`
		Data               []string `json:"data"`
		ArrivalIsDatetime  bool     `json:"arrival_is_datetime"`
		Encryption         string   `json:"encryption"`
		Metrics            int      `json:"metrics"`
		ShardLimit         int      `json:"shard_limit"`
		DeviceGetIterator  string   `json:"device_get_iterator"`
		DeviceDelete       string   `json:"device_delete"`
		WrongSecret        string   `json:"wrong_secret"`
		StreamsAfterDelete []string `json:"streams_after_delete"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &out), res.stdout)
	require.Equal(t, "ACTIVE", out.Status)
	require.Equal(t, 2, out.OpenShards)
	require.Zero(t, out.BatchFailed)
	require.Equal(t, out.PutShard, out.DevicePutShard, "same partition key, same shard")
	require.Equal(t, []string{"\x00first", "second", "third", "from-device"}, out.Data)
	require.True(t, out.ArrivalIsDatetime)
	require.Equal(t, "KMS", out.Encryption)
	require.Equal(t, 7, out.Metrics)
	require.Equal(t, 1000, out.ShardLimit)
	require.Equal(t, "AccessDeniedException", out.DeviceGetIterator)
	require.Equal(t, "AccessDeniedException", out.DeviceDelete)
	require.Equal(t, "InvalidSignatureException", out.WrongSecret)
	require.Empty(t, out.StreamsAfterDelete)
}
