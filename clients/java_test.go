package clients

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/runneltest"
	"github.com/runnel-dev/runnel/internal/testserver"
)

// javaProject and kplProject are the Maven projects of the Java clients:
// the Kinesis Client Library and the AWS SDK for Java v2, and apart from
// them (it needs protobuf 3, the KCL protobuf 4) the Kinesis Producer
// Library, at the versions their pom.xml pin.
var (
	javaProject = filepath.Join("testdata", "java")
	kplProject  = filepath.Join("testdata", "kpl")
)

type mavenBuild struct {
	once      sync.Once
	classpath string
	skip, err error
}

var javaBuilds struct {
	mu     sync.Mutex
	java   string
	builds map[string]*mavenBuild
}

// javaClients returns java and the classpath of javaProject.
func javaClients(t *testing.T) (java, classpath string) {
	t.Helper()
	return javaBuild(t, javaProject)
}

// javaBuild returns java and the classpath of the Maven project in dir,
// built once per test binary with Maven in offline mode (.ci/run fills
// the local repository ~/.m2 first) into <user cache dir>/runnel/<dir's
// name>-<hash of its path>. It skips the test when java or mvn is missing
// or the local repository lacks the dependencies, unless
// RUNNEL_INTEGRATION=required.
func javaBuild(t *testing.T, dir string) (java, classpath string) {
	t.Helper()
	javaBuilds.mu.Lock()
	if javaBuilds.builds == nil {
		javaBuilds.builds = map[string]*mavenBuild{}
	}
	b, ok := javaBuilds.builds[dir]
	if !ok {
		b = &mavenBuild{}
		javaBuilds.builds[dir] = b
	}
	javaBuilds.mu.Unlock()
	b.once.Do(func() {
		java, err := exec.LookPath("java")
		if err != nil {
			b.skip = err
			return
		}
		mvn, err := exec.LookPath("mvn")
		if err != nil {
			b.skip = err
			return
		}
		cache, err := os.UserCacheDir()
		if err != nil {
			b.err = err
			return
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			b.err = err
			return
		}
		sum := sha256.Sum256([]byte(abs))
		out := filepath.Join(cache, "runnel", fmt.Sprintf("%s-%x", filepath.Base(dir), sum[:6]))
		cpFile := filepath.Join(out, "classpath.txt")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, mvn, "-B", "-q", "-o", "-Dstyle.color=never",
			"-Dbuild.dir="+out, "-Dmdep.outputFile="+cpFile,
			"package", "dependency:build-classpath")
		cmd.Dir = dir
		log, err := cmd.CombinedOutput()
		switch {
		case err != nil && strings.Contains(string(log), "offline mode"):
			b.skip = fmt.Errorf("the local Maven repository lacks what %s needs (run mvn dependency:go-offline there): %s", dir, log)
			return
		case err != nil:
			b.err = fmt.Errorf("mvn package in %s: %w\n%s", dir, err, log)
			return
		}
		cp, err := os.ReadFile(cpFile)
		if err != nil {
			b.err = err
			return
		}
		javaBuilds.mu.Lock()
		javaBuilds.java = java
		javaBuilds.mu.Unlock()
		b.classpath = filepath.Join(out, "classes") + string(os.PathListSeparator) + strings.TrimSpace(string(cp))
	})
	if b.skip != nil {
		msg := fmt.Sprintf("java and mvn with the Java clients are needed: %v", b.skip)
		if os.Getenv("RUNNEL_INTEGRATION") == "required" {
			t.Fatal(msg)
		}
		t.Skip(msg + "; set RUNNEL_INTEGRATION=required to make this a failure")
	}
	require.NoError(t, b.err)
	javaBuilds.mu.Lock()
	defer javaBuilds.mu.Unlock()
	return javaBuilds.java, b.classpath
}

// javaProc is one of the Java client programs running in the background,
// its standard output read line by line.
type javaProc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   runneltest.SyncBuffer
	log   runneltest.SyncBuffer
	done  chan struct{}
	err   error
}

// startJava runs dev.runnel.scenario.<main> from javaProject with args.
// Cleanup kills it if it still runs.
func startJava(t *testing.T, env []string, main string, args ...string) *javaProc {
	t.Helper()
	return startJavaFrom(t, javaProject, env, main, args...)
}

// startJavaFrom runs dev.runnel.scenario.<main> from the Maven project in
// dir with args.
func startJavaFrom(t *testing.T, dir string, env []string, main string, args ...string) *javaProc {
	t.Helper()
	java, cp := javaBuild(t, dir)
	p := &javaProc{name: main + " " + strings.Join(args, " ")}
	p.cmd = exec.Command(java, append([]string{"-Xss512k", "-XX:+UseSerialGC",
		"-Dorg.slf4j.simpleLogger.showDateTime=true", "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
		"-cp", cp, "dev.runnel.scenario." + main}, args...)...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.log
	var err error
	p.stdin, err = p.cmd.StdinPipe()
	require.NoError(t, err)
	p.start(t)
	return p
}

// start starts p.cmd, set up by the caller. Cleanup kills it if it still
// runs, and shows the end of its standard error if the test failed.
func (p *javaProc) start(t *testing.T) {
	t.Helper()
	p.done = make(chan struct{})
	require.NoError(t, p.cmd.Start())
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s stderr:\n%s", p.name, tailLines(p.log.String(), 200))
		}
	})
}

func (p *javaProc) kill() {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// wait waits for the program to exit and requires success: status 0, or
// 143, which is how the JVM exits after running its shutdown hooks on
// SIGTERM.
func (p *javaProc) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-p.done:
		if ee, ok := p.err.(*exec.ExitError); ok && ee.ExitCode() == 143 {
			return
		}
		require.NoError(t, p.err, "%s:\n%s", p.name, tailLines(p.log.String(), 60))
	case <-time.After(d):
		t.Fatalf("%s did not finish within %s:\n%s", p.name, d, tailLines(p.log.String(), 60))
	}
}

// lines returns the output lines that start with kind, split into fields.
func (p *javaProc) lines(kind string) [][]string {
	var got [][]string
	for l := range strings.Lines(p.out.String()) {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == kind {
			got = append(got, f)
		}
	}
	return got
}

func tailLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// waitUntil polls cond every 50ms until it holds, for at most d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// javaEnv is the environment of the Java clients against srv: TLS trust
// for cert when srv is https, DynamoDB (and STS) at ddb.
func javaEnv(t *testing.T, srv *runneltest.Process, cert, ddb string) []string {
	return append(clientEnv(t),
		"RUNNEL_ENDPOINT="+srv.URL,
		"RUNNEL_CA_CERT="+cert,
		"RUNNEL_DYNAMODB="+ddb,
		"RUNNEL_STS="+ddb,
		"AWS_CA_BUNDLE="+cert,
	)
}

// put is one record a producer had acknowledged.
type put struct{ key, n string }

// puts returns what a producer printed as acknowledged: "PUT key n shard seq".
func puts(t *testing.T, p *javaProc) []put {
	t.Helper()
	var got []put
	for _, f := range p.lines("PUT") {
		require.Len(t, f, 5, "PUT line %q", f)
		got = append(got, put{f[1], f[2]})
	}
	return got
}

// consumed is a record a KCL worker processed: "REC worker shard seq
// subseq latency-ms key n epoch-ms".
type consumed struct {
	worker, shard string
	seq           *big.Int
	sub           int64
	latency       time.Duration
	putAt         time.Time
	put
}

func parseREC(t *testing.T, f []string) consumed {
	t.Helper()
	require.Len(t, f, 9, "REC line %q", f)
	seq, ok := new(big.Int).SetString(f[3], 10)
	require.True(t, ok, "sequence number %q", f[3])
	sub, err := strconv.ParseInt(f[4], 10, 64)
	require.NoError(t, err)
	ms, err := strconv.ParseInt(f[5], 10, 64)
	require.NoError(t, err)
	at, err := strconv.ParseInt(f[8], 10, 64)
	require.NoError(t, err)
	return consumed{worker: f[1], shard: f[2], seq: seq, sub: sub, latency: time.Duration(ms) * time.Millisecond,
		putAt: time.UnixMilli(at), put: put{f[6], f[7]}}
}

// requireInOrder checks what worker w printed: within each lease it holds
// on a shard (from its INIT line on), records come in increasing
// (sequence number, sub-sequence number); and each key's records come in
// put order, except that a key's record may come again (redelivery after
// a lease moved) and records may be left out that the other worker
// processed (its lease on the parent shard, or before a takeover).
func requireInOrder(t *testing.T, w *javaProc, other map[put]bool) {
	t.Helper()
	type pos struct {
		seq *big.Int
		sub int64
	}
	last := map[string]pos{}
	lastN := map[string]int{}
	for l := range strings.Lines(w.out.String()) {
		f := strings.Fields(l)
		switch {
		case len(f) == 3 && f[0] == "INIT":
			delete(last, f[2])
		case len(f) > 0 && f[0] == "REC":
			r := parseREC(t, f)
			if p, ok := last[r.shard]; ok {
				c := r.seq.Cmp(p.seq)
				require.True(t, c > 0 || c == 0 && r.sub > p.sub, "%s: %s after %s/%d in %s", r.worker, l, p.seq, p.sub, r.shard)
			}
			last[r.shard] = pos{r.seq, r.sub}
			n, err := strconv.Atoi(r.n)
			require.NoError(t, err)
			prev, ok := lastN[r.key]
			if !ok {
				prev = -1
			}
			for skipped := prev + 1; skipped < n; skipped++ {
				require.True(t, other[put{r.key, strconv.Itoa(skipped)}], "%s: %s %d came before %d, which no worker processed", r.worker, r.key, n, skipped)
			}
			lastN[r.key] = n
		}
	}
}

// latencies returns the 50th and 99th percentile and the maximum of the
// put-to-process latency of the first delivery of each record.
func latencies(recs []consumed) (p50, p99, most time.Duration) {
	seen := map[put]bool{}
	var ds []time.Duration
	for _, r := range recs {
		if !seen[r.put] {
			seen[r.put] = true
			ds = append(ds, r.latency)
		}
	}
	if len(ds) == 0 {
		return 0, 0, 0
	}
	slices.Sort(ds)
	return ds[len(ds)/2], ds[len(ds)*99/100], ds[len(ds)-1]
}

// TestJavaSDKProducer puts records with the AWS SDK for Java v2 (CBOR,
// HTTP/2 by prior knowledge over http://) with PutRecord and PutRecords,
// and reads them back with `runnel tail`: every record, in order per key.
func TestJavaSDKProducer(t *testing.T) {
	javaClients(t)
	t.Parallel()
	srv := startServer(t)
	a := newAWSCLI(t, srv.URL)
	const name = "java-sdk-producer"
	a.run("create-stream", "--stream-name", name, "--shard-count", "2")
	a.run("wait", "stream-exists", "--stream-name", name)

	p := startJava(t, javaEnv(t, srv, "", ""), "Produce", name, "6", "4", "0")
	p.wait(t, cmdTimeout)
	acked := puts(t, p)
	require.Len(t, acked, 24)
	shards := map[string]bool{}
	for _, f := range p.lines("PUT") {
		shards[f[3]] = true
	}
	require.Len(t, shards, 2, "six keys land on both shards")

	rn := &runnelCLI{t: t, bin: runneltest.Binary(t), endpoint: srv.URL, env: clientEnv(t)}
	tail := rn.run(nil, "tail", name, "--no-follow", "--from", "trim-horizon")
	next := map[string]int{}
	for l := range strings.Lines(tail.stdout) {
		f := strings.Fields(l)
		require.Len(t, f, 3, "record %q", l)
		n, err := strconv.Atoi(f[1])
		require.NoError(t, err)
		require.Equal(t, next[f[0]], n, "records of key %s in put order", f[0])
		next[f[0]]++
	}
	require.Len(t, next, 6)
	for k, n := range next {
		require.Equal(t, 4, n, "key %s", k)
	}
	require.NotContains(t, srv.Stderr(), "level=ERROR")
}

// TestKCL runs a Kinesis Client Library 3 application (two workers, lease
// and coordinator tables in moto's DynamoDB) against `runnel serve`, in
// polling mode and in enhanced fan-out mode over HTTP/2 with and without
// TLS. While the AWS SDK for Java v2 puts records, a shard is split and
// two are merged; then one worker is killed with SIGKILL and the other
// takes its shards over from their checkpoints. Every record is processed,
// in order per partition key.
func TestKCL(t *testing.T) {
	javaClients(t)
	for _, tc := range []struct {
		name, mode string
		tls        bool
	}{
		{"polling", "polling", false},
		{"fanout-h2c", "fanout", false},
		{"fanout-tls", "fanout", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			kclScenario(t, tc.mode, tc.tls)
		})
	}
}

func kclScenario(t *testing.T, mode string, tls bool) {
	const name, app = "kcl-scenario", "kcl-scenario-app"
	ddb := testserver.Moto(t)
	var srv *runneltest.Process
	cert := ""
	if tls {
		srv, cert = startTLSServer(t)
	} else {
		srv = startServer(t)
	}
	env := javaEnv(t, srv, cert, ddb.URL)
	a := newAWSCLI(t, srv.URL)
	a.env = env
	a.run("create-stream", "--stream-name", name, "--shard-count", "4")
	a.run("wait", "stream-exists", "--stream-name", name)

	w1 := startJava(t, env, "Consume", name, app, "w1", mode)
	w2 := startJava(t, env, "Consume", name, app, "w2", mode)
	prod := startJava(t, env, "Produce", name, "32", "-1", "20")
	started := time.Now()
	waitUntil(t, 4*time.Minute, "both workers to process records", func() bool {
		return len(w1.lines("REC")) > 0 && len(w2.lines("REC")) > 0
	})
	t.Logf("both workers processing %s after the producer started", time.Since(started).Round(time.Millisecond))
	// The latency figures come from records put once both workers run,
	// and processed before any resharding.
	steady := time.Now()
	var recs []consumed
	waitUntil(t, time.Minute, "500 records put and processed while both workers run", func() bool {
		recs = recs[:0]
		for _, w := range []*javaProc{w1, w2} {
			for _, f := range w.lines("REC") {
				if r := parseREC(t, f); !r.putAt.Before(steady) {
					recs = append(recs, r)
				}
			}
		}
		return len(recs) >= 500
	})
	p50, p99, most := latencies(recs)
	t.Logf("KCL %s (tls=%v), put-to-process latency over %d records: p50 %s, p99 %s, max %s", mode, tls, len(recs), p50, p99, most)

	shards := a.run("list-shards", "--stream-name", name)["Shards"].([]any)
	r0 := shards[0].(map[string]any)["HashKeyRange"].(map[string]any)
	lo, _ := new(big.Int).SetString(r0["StartingHashKey"].(string), 10)
	hi, _ := new(big.Int).SetString(r0["EndingHashKey"].(string), 10)
	mid := new(big.Int).Rsh(new(big.Int).Add(lo, hi), 1)
	a.run("split-shard", "--stream-name", name, "--shard-to-split", "shardId-000000000000", "--new-starting-hash-key", mid.String())
	a.run("wait", "stream-exists", "--stream-name", name)
	a.run("merge-shards", "--stream-name", name, "--shard-to-merge", "shardId-000000000002", "--adjacent-shard-to-merge", "shardId-000000000003")
	a.run("wait", "stream-exists", "--stream-name", name)
	children := []string{"shardId-000000000004", "shardId-000000000005", "shardId-000000000006"}
	recShards := func(ws ...*javaProc) map[string]bool {
		got := map[string]bool{}
		for _, w := range ws {
			for _, f := range w.lines("REC") {
				got[f[2]] = true
			}
		}
		return got
	}
	waitUntil(t, 2*time.Minute, "the child shards' records to be processed", func() bool {
		got := recShards(w1, w2)
		return got[children[0]] && got[children[1]] && got[children[2]]
	})
	for _, parent := range []string{"shardId-000000000000", "shardId-000000000002", "shardId-000000000003"} {
		require.True(t, slices.ContainsFunc(append(w1.lines("END"), w2.lines("END")...), func(f []string) bool { return f[2] == parent }),
			"%s reached its end and was checkpointed there", parent)
	}

	// w1's leases on open shards: initialized and neither ended nor lost.
	held := func(w *javaProc) []string {
		h := map[string]bool{}
		for l := range strings.Lines(w.out.String()) {
			f := strings.Fields(l)
			switch {
			case len(f) == 3 && f[0] == "INIT":
				h[f[2]] = true
			case len(f) == 3 && (f[0] == "END" || f[0] == "LOST"):
				delete(h, f[2])
			}
		}
		var s []string
		for k := range h {
			s = append(s, k)
		}
		slices.Sort(s)
		return s
	}
	// Kill a worker that holds leases on open shards but is not the
	// leader: a dead leader holds the KCL 3 leader lock (in the coordinator
	// table) for two minutes before another worker reassigns its leases.
	leader := func(w *javaProc) bool {
		l := strings.LastIndex(w.log.String(), " is a leader, performing assignment")
		n := strings.LastIndex(w.log.String(), " is not a leader, ignore")
		return l > n
	}
	var victim, survivor *javaProc
	waitUntil(t, time.Minute, "a worker that is not the leader to hold a lease on an open shard", func() bool {
		for _, w := range [][2]*javaProc{{w1, w2}, {w2, w1}} {
			if !leader(w[0]) && len(held(w[0])) > 0 {
				victim, survivor = w[0], w[1]
				return true
			}
		}
		return false
	})
	victim.kill()
	taken := held(victim)
	lastCkpt := map[string]*big.Int{}
	for _, f := range victim.lines("CKPT") {
		lastCkpt[f[2]], _ = new(big.Int).SetString(f[3], 10)
	}
	killedAt := len(survivor.lines("REC"))
	killed := time.Now()
	waitUntil(t, 2*time.Minute, "the other worker to take over the killed worker's shards", func() bool {
		got := map[string]bool{}
		for _, f := range survivor.lines("REC")[killedAt:] {
			got[f[2]] = true
		}
		for _, s := range taken {
			if !got[s] {
				return false
			}
		}
		return true
	})
	t.Logf("killed a worker holding %v; the other took them over within %s", taken, time.Since(killed).Round(time.Millisecond))
	for _, s := range taken {
		ck, ok := lastCkpt[s]
		if !ok {
			continue
		}
		for _, f := range survivor.lines("REC")[killedAt:] {
			if f[2] == s {
				first := parseREC(t, f)
				require.Equal(t, 1, first.seq.Cmp(ck), "the survivor resumes %s after the last checkpoint %s, not at %s", s, ck, first.seq)
				break
			}
		}
	}

	require.NoError(t, prod.stdin.Close())
	prod.wait(t, time.Minute)
	acked := puts(t, prod)
	require.NotEmpty(t, acked)
	processed := func() map[put]bool {
		got := map[put]bool{}
		for _, w := range []*javaProc{w1, w2} {
			for _, f := range w.lines("REC") {
				got[parseREC(t, f).put] = true
			}
		}
		return got
	}
	waitUntil(t, 2*time.Minute, "every acknowledged record to be processed", func() bool {
		got := processed()
		for _, p := range acked {
			if !got[p] {
				return false
			}
		}
		return true
	})
	of := func(w *javaProc) map[put]bool {
		got := map[put]bool{}
		for _, f := range w.lines("REC") {
			got[parseREC(t, f).put] = true
		}
		return got
	}
	requireInOrder(t, w1, of(w2))
	requireInOrder(t, w2, of(w1))

	all := len(w1.lines("REC")) + len(w2.lines("REC"))
	t.Logf("KCL %s (tls=%v): %d records put, %d processed (%d redelivered)", mode, tls, len(acked), all, all-len(processed()))

	require.NoError(t, survivor.cmd.Process.Signal(syscall.SIGTERM))
	survivor.wait(t, time.Minute)
	require.NotContains(t, srv.Stderr(), "level=ERROR")
}
