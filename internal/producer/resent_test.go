package producer_test

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesisclient"
	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/producer"
	"github.com/runnel-dev/runnel/internal/producer/producertest"
)

// lossyProxy forwards connections to target on 127.0.0.1, except that on
// the first one it lets the request through and resets the connection
// once the answer begins, without passing the answer on: a call the
// server took whose answer the client never gets.
func lossyProxy(t *testing.T, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close() // kept-alive connections end with the test
		}
		mu.Unlock()
		wg.Wait()
	})
	first := true
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, s)
			mu.Unlock()
			lose := first
			first = false
			wg.Go(func() { _, _ = io.Copy(s, c); s.Close() })
			wg.Go(func() {
				if lose {
					var b [1]byte
					_, _ = s.Read(b[:]) // the answer begins
					c.(*net.TCPConn).SetLinger(0)
				} else {
					_, _ = io.Copy(c, s)
				}
				c.Close()
				s.Close()
			})
		}
	})
	return "http://" + ln.Addr().String()
}

// A PutRecords whose answer was lost to a reset connection is sent again
// by the SDK's connection retries and stored twice; the producer says so
// (Call.Resent), which is how a caller counting records (runnel bench)
// knows the extra ones are not a fault.
func TestProducerReportsCallsTheSDKResent(t *testing.T) {
	srv := kinesistest.Start(t)
	c := srv.Client(t)
	producertest.CreateStream(t, c, "s", 1)
	proxied := kinesis.New(c.Options(), func(o *kinesis.Options) {
		o.BaseEndpoint = aws.String(lossyProxy(t, strings.TrimPrefix(srv.URL, "http://")))
		o.HTTPClient = kinesisclient.HTTPClient()
	})
	var mu sync.Mutex
	var calls []producer.Call
	p := newProducer(t, proxied, producer.Config{Stream: "s", Linger: time.Millisecond, BaseBackoff: time.Millisecond,
		OnCall: func(c producer.Call) { mu.Lock(); calls = append(calls, c); mu.Unlock() }})
	writeKeys(t, p, 10, 1)
	st := closeProducer(t, p)
	require.Equal(t, int64(10), st.Delivered)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, calls, 1)
	require.NoError(t, calls[0].Err)
	require.Equal(t, 1, calls[0].Resent)
	require.Len(t, producertest.ReadAll(t, c, "s"), 20, "the lost answer's call was stored, and then again")
}
