package clients

import (
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/runneltest"
	"github.com/runnel-dev/runnel/internal/testserver"
)

// motoAccount is the account moto's STS reports by default.
const motoAccount = "123456789012"

// TestKPL puts user records through the Kinesis Producer Library, which
// aggregates them (over HTTPS: the KPL speaks only TLS), and reads them
// back de-aggregated with a KCL worker and with `runnel run`: every user
// record.
func TestKPL(t *testing.T) {
	javaClients(t)
	javaBuild(t, kplProject)
	t.Parallel()
	const name, keys, perKey = "kpl-scenario", 8, 50
	// The KPL asks STS (GetCallerIdentity, over HTTPS only) for the
	// account to build the stream's ARN with: moto serves it with runnel's
	// certificate, and runnel's streams live in the account moto reports.
	srv, cert := startTLSServer(t, "--account-id", motoAccount)
	ddb := testserver.MotoTLS(t, cert, filepath.Join(filepath.Dir(cert), "key.pem"))
	env := javaEnv(t, srv, cert, ddb.URL)
	a := newAWSCLI(t, srv.URL)
	a.env = env
	a.run("create-stream", "--stream-name", name, "--shard-count", "2")
	a.run("wait", "stream-exists", "--stream-name", name)

	prod := startJavaFrom(t, kplProject, env, "KplProduce", name, strconv.Itoa(keys), strconv.Itoa(perKey))
	prod.wait(t, cmdTimeout)
	acked := puts(t, prod)
	require.Len(t, acked, keys*perKey)

	rn := &runnelCLI{t: t, bin: runneltest.Binary(t), endpoint: srv.URL, env: env}
	raw := rn.run(nil, "tail", name, "--no-follow", "--from", "trim-horizon", "--kpl-raw")
	stored := strings.Count(raw.stdout, "\n")
	require.Less(t, stored, keys*perKey/2, "the KPL packed several user records into each Kinesis record")
	t.Logf("the KPL stored %d user records in %d Kinesis records", keys*perKey, stored)

	// The KPL does not promise to send a key's records in the order they
	// were added (awslabs/amazon-kinesis-producer#135: it aggregates and
	// sends per shard from several threads): runnel's part is to store
	// each PutRecords in the order it arrived and to deliver in stored
	// order. So the readers are checked against the sequence numbers the
	// KPL was acknowledged with, and the KPL's own reordering is counted.
	ackedSeq := map[put]*big.Int{}
	for _, f := range prod.lines("PUT") {
		seq, ok := new(big.Int).SetString(f[4], 10)
		require.True(t, ok, "sequence number %q", f[4])
		ackedSeq[put{f[1], f[2]}] = seq
	}
	sentOutOfOrder := 0
	last := map[string]*big.Int{}
	for _, p := range acked {
		if prev := last[p.key]; prev != nil && ackedSeq[p].Cmp(prev) < 0 {
			sentOutOfOrder++
		}
		last[p.key] = ackedSeq[p]
	}
	t.Logf("the KPL stored %d of %d user records before an earlier record of their key", sentOutOfOrder, len(acked))

	// requireAll checks that every user record came, given (key, n) as a
	// reader saw them.
	requireAll := func(who string, got []put) {
		t.Helper()
		seen := map[put]bool{}
		for _, p := range got {
			seen[p] = true
		}
		for _, p := range acked {
			require.True(t, seen[p], "%s: user record %v", who, p)
		}
	}

	w := startJava(t, env, "Consume", name, "kpl-scenario-app", "w1", "polling")
	waitUntil(t, 4*time.Minute, "the KCL to process every user record", func() bool {
		return len(w.lines("REC")) >= keys*perKey
	})
	var kcl []put
	subs := 0
	type position struct {
		seq *big.Int
		sub int64
	}
	lastOn := map[string]position{}
	for _, f := range w.lines("REC") {
		r := parseREC(t, f)
		kcl = append(kcl, r.put)
		if r.sub > 0 {
			subs++
		}
		// Each user record is where the KPL was told it was stored, and
		// the KCL reads each shard in stored order.
		require.Zero(t, r.seq.Cmp(ackedSeq[r.put]), "user record %v read at %s, acknowledged at %s", r.put, r.seq, ackedSeq[r.put])
		if prev, ok := lastOn[r.shard]; ok {
			c := r.seq.Cmp(prev.seq)
			require.True(t, c > 0 || c == 0 && r.sub > prev.sub, "shard %s: %s/%d read after %s/%d", r.shard, r.seq, r.sub, prev.seq, prev.sub)
		}
		lastOn[r.shard] = position{r.seq, r.sub}
	}
	requireAll("KCL", kcl)
	require.Positive(t, subs, "the KCL saw user records with sub-sequence numbers")
	require.NoError(t, w.cmd.Process.Signal(syscall.SIGTERM))
	w.wait(t, time.Minute)

	dir := t.TempDir()
	pipelines := filepath.Join(dir, "pipelines.yaml")
	require.NoError(t, os.WriteFile(pipelines, []byte(`pipelines:
  - name: kpl-log
    source: `+name+`
    startingPosition: TRIM_HORIZON
    handler: {type: builtin, name: log}
`), 0o644))
	run := runneltest.Start(t, env, "--endpoint", srv.URL, "run", pipelines)
	var logged []put
	waitUntil(t, 2*time.Minute, "runnel run to print every user record", func() bool {
		logged = logged[:0]
		for l := range strings.Lines(run.Stdout()) {
			var rec struct {
				Data string `json:"data"`
			}
			require.NoError(t, json.Unmarshal([]byte(l), &rec), l)
			f := strings.Fields(rec.Data)
			require.Len(t, f, 3, "record %q", rec.Data)
			logged = append(logged, put{f[0], f[1]})
		}
		return len(logged) >= keys*perKey
	})
	requireAll("runnel run", logged)
	require.NoError(t, run.Stop(30*time.Second), run.Stderr())
	require.NotContains(t, srv.Stderr(), "level=ERROR")
}
