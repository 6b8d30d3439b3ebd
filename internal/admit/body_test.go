package admit

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bodyServer serves ReadAll with lim and answers the refusal's status, or
// 200 with the body's SHA-256 as fed to the tee and as read.
func bodyServer(t *testing.T, lim BodyLimits) (*httptest.Server, *Bodies) {
	t.Helper()
	a, err := New(Config{Bodies: lim, Registerer: prometheus.NewRegistry()})
	require.NoError(t, err)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		body, release, err := a.Bodies.ReadAll(w, r, 1<<20, h)
		defer release()
		var ref *Refusal
		if errors.As(err, &ref) {
			w.WriteHeader(ref.Status)
			_, _ = io.WriteString(w, ref.Reason)
			return
		}
		if err != nil {
			// The client went away (the busy test closes its connection).
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		sum := sha256.Sum256(body)
		assert.Equal(t, sum[:], h.Sum(nil), "the tee saw exactly the body")
		_, _ = io.WriteString(w, strconv.Itoa(len(body)))
	}))
	t.Cleanup(srv.Close)
	return srv, a.Bodies
}

func post(t *testing.T, url string, body io.Reader, length int64) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, body)
	require.NoError(t, err)
	req.ContentLength = length
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(raw)
}

func TestReadAll(t *testing.T) {
	srv, b := bodyServer(t, BodyLimits{Timeout: time.Second, Memory: 1 << 20})
	for _, n := range []int{0, 1, 64<<10 - 1, 64 << 10, 64<<10 + 1, 700 << 10} {
		status, got := post(t, srv.URL, bytes.NewReader(bytes.Repeat([]byte{'x'}, n)), int64(n))
		require.Equal(t, http.StatusOK, status, got)
		require.Equal(t, strconv.Itoa(n), got)
	}
	// Unknown length (chunked).
	status, got := post(t, srv.URL, io.MultiReader(strings.NewReader("abc"), strings.NewReader("def")), -1)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "6", got)

	status, got = post(t, srv.URL, bytes.NewReader(make([]byte, 1<<20+1)), 1<<20+1)
	require.Equal(t, http.StatusRequestEntityTooLarge, status)
	require.Equal(t, ReasonBodyTooLarge, got)
	status, got = post(t, srv.URL, io.MultiReader(bytes.NewReader(make([]byte, 1<<20)), strings.NewReader("x")), -1)
	require.Equal(t, http.StatusRequestEntityTooLarge, status, "a chunked body past the limit")
	require.Equal(t, ReasonBodyTooLarge, got)
	require.Zero(t, b.charged.Load(), "every body gave its budget back")
}

// Bodies read at once, of sizes that make buffers be reused, grown and
// refused, each arrive whole (the server checks every byte against the
// tee), and give back all the budget they took.
func TestReadAllConcurrentReuse(t *testing.T) {
	srv, b := bodyServer(t, BodyLimits{Timeout: 5 * time.Second, Memory: 2 << 20, FreeBytes: 16 << 10})
	sizes := []int{0, 10, 16 << 10, 16<<10 + 1, 40 << 10, 200 << 10, 700 << 10, 90 << 10}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for i := range 25 {
				n := sizes[(w+i)%len(sizes)]
				body := bytes.Repeat([]byte{byte(w*25 + i)}, n)
				status, got := post(t, srv.URL, bytes.NewReader(body), int64(n))
				if status == http.StatusServiceUnavailable {
					assert.Equal(t, ReasonBodyBusy, got) // the budget was spent by the others
					continue
				}
				assert.Equal(t, http.StatusOK, status, got)
				assert.Equal(t, strconv.Itoa(n), got)
			}
		})
	}
	wg.Wait()
	require.Zero(t, b.charged.Load(), "every body gave its budget back")
}

// Releasing a body twice gives its buffer to one later body, not two.
func TestReadAllReleaseTwice(t *testing.T) {
	a, err := New(Config{Registerer: prometheus.NewRegistry()})
	require.NoError(t, err)
	read := func(fill byte) ([]byte, func()) {
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(bytes.Repeat([]byte{fill}, 100<<10)))
		body, release, err := a.Bodies.ReadAll(httptest.NewRecorder(), r, 1<<20, nil)
		require.NoError(t, err)
		return body, release
	}
	_, release := read('a')
	release()
	release()
	require.Zero(t, a.Bodies.charged.Load())
	b1, release1 := read('b')
	b2, release2 := read('c')
	require.Equal(t, bytes.Repeat([]byte{'b'}, 100<<10), b1, "the second body wrote into the first one's buffer")
	require.Equal(t, bytes.Repeat([]byte{'c'}, 100<<10), b2)
	release1()
	release2()
	require.Zero(t, a.Bodies.charged.Load())
}

func TestReadAllTooSlow(t *testing.T) {
	srv, b := bodyServer(t, BodyLimits{Timeout: 300 * time.Millisecond, MinRate: 1 << 20})
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc")
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, c.SetReadDeadline(start.Add(10*time.Second)))
	raw, err := io.ReadAll(c)
	require.NoError(t, err, "the server closes the connection")
	require.Contains(t, string(raw), "408 Request Timeout")
	require.Contains(t, string(raw), ReasonBodySlow)
	require.Less(t, time.Since(start), 5*time.Second)
	require.Zero(t, b.charged.Load())
}

func TestReadAllBusy(t *testing.T) {
	srv, b := bodyServer(t, BodyLimits{Timeout: 5 * time.Second, Memory: 1 << 20, FreeBytes: 1 << 10})
	// One slow body holds the whole budget...
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n")
	require.NoError(t, err)
	_, err = c.Write(make([]byte, 900<<10))
	require.NoError(t, err)
	deadline := time.Now().Add(5 * time.Second)
	for b.charged.Load() < 512<<10 {
		require.True(t, time.Now().Before(deadline), "the first body never took the budget")
		<-time.After(5 * time.Millisecond)
	}
	// ...so another large one is refused at once, while a small one (within
	// FreeBytes) still goes through.
	status, got := post(t, srv.URL, bytes.NewReader(make([]byte, 600<<10)), 600<<10)
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Equal(t, ReasonBodyBusy, got)
	status, _ = post(t, srv.URL, strings.NewReader("small"), 5)
	require.Equal(t, http.StatusOK, status)
}
