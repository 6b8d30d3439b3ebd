package crashtest

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/smithy-go"

	"github.com/runnel-dev/runnel/internal/runneltest"
)

// mountTmpfs mounts a tmpfs of size on a new directory and unmounts it at
// cleanup. Where mounting is not permitted the test is skipped, unless
// RUNNEL_INTEGRATION=required.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "runnel-full-")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		os.Remove(dir)
		if os.Getenv("RUNNEL_INTEGRATION") == "required" {
			t.Fatalf("mounting a tmpfs: %v: %s", err, out)
		}
		t.Skipf("mounting a tmpfs is not permitted here (%v: %s)", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("unmounting %s: %v: %s", dir, err, out)
			return
		}
		os.Remove(dir)
	})
	return dir
}

func remountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,size="+size, dir).CombinedOutput(); err != nil {
		t.Fatalf("remounting %s: %v: %s", dir, err, out)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestFullDisk fills a 64 MiB data dir with PutRecords from several
// clients: each gets ServiceUnavailable at once, naming the cause; the
// server stays up, says why on /readyz, /metrics and its log; once space
// is freed writes resume by themselves, and after a restart every
// acknowledged record is there exactly once and no refused one is.
func TestFullDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the runnel binary")
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "crashtest")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "crashtest")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	mnt := mountTmpfs(t, "64m")
	dataDir := mnt + "/data"

	// The smallest memtable, as on a disk this small: writes pause
	// while less than 4 memtables and 8 MiB are free.
	srv := runneltest.Serve(t, "--data-dir", dataDir, "--memtable-mib", "4")
	createStream(t, newClient(t, srv.URL, true))
	client := newClient(t, srv.URL, false)
	l := newLedger()

	const clients = 4
	var refused, slowRefusals atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	for id := range clients {
		wg.Go(func() {
			p := producer{id: id, round: 1, client: client, ledger: l, rng: rand.New(rand.NewPCG(uint64(id), 7)), padding: 2000}
			errs := 0
			for errs < 5 && ctx.Err() == nil {
				start := time.Now()
				_, err := p.put(ctx, false)
				if err == nil {
					continue
				}
				errs++
				if ae, ok := errors.AsType[smithy.APIError](err); !ok || ae.ErrorCode() != "ServiceUnavailable" || !strings.Contains(ae.ErrorMessage(), "free") {
					t.Errorf("client %d: want ServiceUnavailable naming free space, got %v", id, err)
					return
				}
				refused.Add(1)
				if time.Since(start) > time.Second {
					slowRefusals.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if ctx.Err() != nil {
		t.Fatalf("the disk never filled: %d records acknowledged", len(l.acked))
	}
	t.Logf("full after %d acknowledged records; %d calls refused, %d of them after more than 1s", len(l.acked), refused.Load(), slowRefusals.Load())
	// Every call that failed was refused with ServiceUnavailable, before
	// storage took its records: none may be stored.
	for payload := range l.unknown {
		l.rejected[payload] = true
		delete(l.unknown, payload)
	}
	if slowRefusals.Load() > 0 {
		t.Errorf("%d refusals took more than a second", slowRefusals.Load())
	}
	select {
	case <-srv.Done():
		t.Fatalf("runnel exited on a full disk: %v\n%s", srv.Err(), srv.Stderr())
	default:
	}
	code, body := get(t, srv.URL+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "free") {
		t.Errorf("/readyz on a full disk: %d %q", code, body)
	}
	if _, metrics := get(t, srv.URL+"/metrics"); !strings.Contains(metrics, "runnel_storage_writable 0") {
		t.Error("/metrics does not show runnel_storage_writable 0")
	}
	if _, stats := get(t, srv.URL+"/api/stats"); !strings.Contains(stats, `"storage":"storage unavailable: data dir`) {
		t.Errorf("the dashboard's /api/stats does not say why writes are refused: %.300s", stats)
	}
	if !strings.Contains(srv.Stderr(), "disk nearly full") {
		t.Errorf("the log does not say the disk is full:\n%s", srv.Stderr())
	}
	l.verify(t, newClient(t, srv.URL, true)) // reads go on

	// Free space: writes resume without a restart.
	remountTmpfs(t, mnt, "256m")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _ := get(t, srv.URL+"/readyz"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready 30s after space was freed\n%s", srv.Stderr())
		}
		<-time.After(50 * time.Millisecond)
	}
	p := producer{id: clients, round: 2, client: client, ledger: l, rng: rand.New(rand.NewPCG(9, 9))}
	accepted := 0
	for range 20 {
		// The SDK now and then loses a connection reading a 200 answer
		// (see newClient): such a call's records stay "unknown".
		if _, err := p.put(t.Context(), false); err == nil {
			accepted++
		} else if _, api := errors.AsType[smithy.APIError](err); api {
			t.Fatalf("put after space was freed: %v", err)
		}
	}
	if accepted < 10 {
		t.Fatalf("only %d of 20 puts accepted after space was freed", accepted)
	}
	if err := srv.StopWith(os.Interrupt, 30*time.Second); err != nil {
		t.Fatalf("stopping runnel: %v\n%s", err, srv.Stderr())
	}

	srv = runneltest.Serve(t, "--data-dir", dataDir, "--memtable-mib", "4")
	l.verify(t, newClient(t, srv.URL, true))
	if err := srv.StopWith(os.Interrupt, 30*time.Second); err != nil {
		t.Errorf("stopping runnel: %v", err)
	}
}

// TestStartOnFullDisk: runnel refuses at once to start on a disk without
// the free space it keeps in reserve, and says so; a second runnel on a
// data dir in use names the first one's pid.
func TestStartOnFullDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the runnel binary")
	}
	mnt := mountTmpfs(t, "16m")
	p := runneltest.Start(t, nil, "serve", "--listen", "127.0.0.1:0", "--data-dir", mnt+"/data")
	select {
	case <-p.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("runnel did not give up starting on a full disk\n%s", p.Stderr())
	}
	if !strings.Contains(p.Stderr(), "free; runnel needs at least 72.0 MiB free to open it") {
		t.Errorf("runnel did not say the disk is too full:\n%s", p.Stderr())
	}

	dir := t.TempDir()
	first := runneltest.Serve(t, "--data-dir", dir)
	second := runneltest.Start(t, nil, "serve", "--listen", "127.0.0.1:0", "--data-dir", dir)
	select {
	case <-second.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("a second runnel on a data dir in use did not exit\n%s", second.Stderr())
	}
	want := "is in use by another runnel (pid " + strconv.Itoa(first.Pid()) + ")"
	if !strings.Contains(second.Stderr(), want) {
		t.Errorf("want %q in:\n%s", want, second.Stderr())
	}
}
