package attack

import (
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"
)

// Bounds TestSlowAndUnfinishedBodies holds the server to, with
// --body-timeout bodyTimeout (the default limits otherwise: 64 KiB/s
// minimum rate, 128 MiB of shared body memory beyond the first 64 KiB of
// each of at most 1024 bodies).
const (
	// rssBound is the most resident memory the server may reach under
	// the attack.
	rssBound = 512 << 20
	// p99Factor is how much slower the normal client's 99th percentile
	// put may be under attack than before it, and p99Floor the floor of
	// that bound (a busy test machine jitters by a few milliseconds).
	p99Factor = 10
	p99Floor  = 100 * time.Millisecond
	// closeSlack is how long after its deadline an attacking connection
	// may still be open.
	closeSlack = 3 * time.Second
)

// bodyTimeout is the --body-timeout of the attack: 2s keeps the test
// short; RUNNEL_ATTACK_BODY_TIMEOUT=10s measures the default.
func bodyTimeout(t *testing.T) time.Duration {
	d := 2 * time.Second
	if v := os.Getenv("RUNNEL_ATTACK_BODY_TIMEOUT"); v != "" {
		var err error
		d, err = time.ParseDuration(v)
		require.NoError(t, err)
	}
	return d
}

// rss reads a figure of /proc/<pid>/status in bytes (VmRSS, VmHWM).
func rss(t *testing.T, pid int, field string) int64 {
	t.Helper()
	v, err := procStatus(pid, field)
	require.NoError(t, err)
	return v
}

func procStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// attacker is one connection sending a PutRecords body it never finishes.
type attacker struct {
	conn     net.Conn
	stalled  time.Time    // when it stopped sending (its deadline counts from here)
	closedAt atomic.Int64 // when the server closed it (unix nanoseconds)
	status   string       // the status line the server answered, if any
}

// open dials the server and sends the headers of a PutRecords call whose
// body is length bytes.
func open(t *testing.T, addr string, length int) *attacker {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	_, err = fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: %s\r\nX-Amz-Target: Kinesis_20131202.PutRecords\r\n"+
		"Content-Type: application/x-amz-json-1.1\r\nContent-Length: %d\r\n\r\n", addr, length)
	require.NoError(t, err)
	return &attacker{conn: c}
}

// watch reads what the server answers until it closes the connection, or
// until limit passes.
func (a *attacker) watch(limit time.Time) {
	_ = a.conn.SetReadDeadline(limit)
	var head [64]byte
	n, _ := io.ReadAtLeast(a.conn, head[:], 12)
	a.status = strings.SplitN(string(head[:n]), "\r\n", 2)[0]
	_, err := io.Copy(io.Discard, a.conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return // still open at the limit
	}
	a.closedAt.Store(time.Now().UnixNano())
}

// TestSlowAndUnfinishedBodies attacks without credentials: 200
// connections trickle a body a byte every 500ms and 100 send 14 MiB of a
// 15 MiB PutRecords body and stop, while a normal client keeps putting.
// The server's memory stays under rssBound, the client's p99 within
// p99Factor of its p99 before the attack, and every attacking connection
// is closed by its deadline.
func TestSlowAndUnfinishedBodies(t *testing.T) {
	timeout := bodyTimeout(t)
	srv := serve(t, "--body-timeout", timeout.String())
	addr := hostPort(t, srv.URL)
	ctx := t.Context()
	kc := kinesisClient(srv.URL, "x", "x")
	_, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(2)})
	require.NoError(t, err)
	waitFor(t, 10*time.Second, "the stream", func() bool {
		_, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
		return err == nil
	})

	// put runs the normal client for d (at most n puts) and returns its
	// latencies.
	put := func(d time.Duration, n int, stop <-chan struct{}) []time.Duration {
		var lat []time.Duration
		end := time.Now().Add(d)
		for i := 0; i < n && time.Now().Before(end); i++ {
			select {
			case <-stop:
				return lat
			default:
			}
			start := time.Now()
			_, err := kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"),
				PartitionKey: aws.String(strconv.Itoa(i)), Data: []byte(`{"event":"click","n":` + strconv.Itoa(i) + `}`)})
			require.NoError(t, err)
			lat = append(lat, time.Since(start))
		}
		return lat
	}
	p99 := func(lat []time.Duration) time.Duration {
		s := slices.Clone(lat)
		slices.Sort(s)
		return s[len(s)*99/100]
	}
	before := put(3*time.Second, 1000, nil)
	baseRSS := rss(t, srv.Pid(), "VmRSS")

	// The attack.
	attackStart := time.Now()
	limit := attackStart.Add(timeout + 20*time.Second)
	var (
		mu       sync.Mutex
		slow     []*attacker
		heavy    []*attacker
		wg       sync.WaitGroup
		peak     = baseRSS
		sampling = make(chan struct{})
	)
	go func() {
		defer close(sampling)
		for time.Now().Before(limit) {
			if v, err := procStatus(srv.Pid(), "VmRSS"); err == nil && v > peak {
				mu.Lock()
				peak = v
				mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(25 * time.Millisecond):
			}
			mu.Lock()
			done := len(slow) == 200 && len(heavy) == 100 && allClosed(slow) && allClosed(heavy)
			mu.Unlock()
			if done {
				return
			}
		}
	}()
	for range 200 {
		a := open(t, addr, 1000)
		a.stalled = time.Now()
		mu.Lock()
		slow = append(slow, a)
		mu.Unlock()
		wg.Add(2)
		go func() { defer wg.Done(); a.watch(limit) }()
		go func() {
			defer wg.Done()
			// A byte every 500ms: never a pause of timeout, far below the
			// minimum rate.
			for i := 0; i < 100 && time.Now().Before(limit); i++ {
				if _, err := a.conn.Write([]byte{'{'}); err != nil {
					return
				}
				<-time.After(500 * time.Millisecond)
			}
		}()
	}
	chunk := make([]byte, 64<<10)
	for i := range chunk {
		chunk[i] = 'A'
	}
	for range 100 {
		a := open(t, addr, 15<<20)
		mu.Lock()
		heavy = append(heavy, a)
		mu.Unlock()
		wg.Add(2)
		go func() { defer wg.Done(); a.watch(limit) }()
		go func() {
			defer wg.Done()
			defer func() { mu.Lock(); a.stalled = time.Now(); mu.Unlock() }()
			if _, err := a.conn.Write([]byte(`{"StreamName":"s","Records":[{"PartitionKey":"k","Data":"`)); err != nil {
				return
			}
			for sent := 0; sent < 14<<20; sent += len(chunk) {
				if _, err := a.conn.Write(chunk); err != nil {
					return // refused and closed
				}
			}
		}()
	}
	during := put(limit.Sub(time.Now()), 100000, sampling)
	wg.Wait()
	<-sampling
	for _, a := range append(slices.Clone(slow), heavy...) {
		_ = a.conn.Close()
	}

	// Every attacking connection was closed, by its deadline.
	var slowest time.Duration
	statuses := map[string]int{}
	for _, a := range append(slices.Clone(slow), heavy...) {
		require.NotZero(t, a.closedAt.Load(), "a connection was still open %s into the attack", limit.Sub(attackStart))
		open := time.Unix(0, a.closedAt.Load()).Sub(a.stalled)
		require.LessOrEqual(t, open, timeout+closeSlack, "closed %s after it stalled", open)
		slowest = max(slowest, open)
		statuses[a.status]++
	}
	hwm := rss(t, srv.Pid(), "VmHWM")
	t.Logf("body timeout %s: RSS %d MiB before, peak %d MiB sampled (VmHWM %d MiB) under attack; "+
		"normal client p99 %s before (%d puts), %s under attack (%d puts); attackers closed at most %s after they stalled; answers %v",
		timeout, baseRSS>>20, peak>>20, hwm>>20, p99(before), len(before), p99(during), len(during), slowest.Round(time.Millisecond), statuses)
	require.Less(t, hwm, int64(rssBound), "resident memory bound")
	require.LessOrEqual(t, p99(during), max(p99Factor*p99(before), p99Floor), "the normal client's p99")
	require.Positive(t, statuses["HTTP/1.1 408 Request Timeout"], "slow bodies are answered 408")
	require.Positive(t, statuses["HTTP/1.1 503 Service Unavailable"], "bodies past the memory budget are answered 503")

	c := client(t, "")
	require.GreaterOrEqual(t, metric(t, c, srv.URL, `runnel_http_refused_total{reason="body_slow"}`, nil), float64(200))
	require.Positive(t, metric(t, c, srv.URL, `runnel_http_refused_total{reason="body_busy"}`, nil))
	require.Zero(t, metric(t, c, srv.URL, `runnel_http_body_buffer_bytes`, nil), "every body's budget is given back")
}

func allClosed(as []*attacker) bool {
	for _, a := range as {
		if a.closedAt.Load() == 0 {
			return false
		}
	}
	return true
}
