package testserver

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// command sends one RESP command on conn and returns the first line of the
// reply.
func command(t *testing.T, conn net.Conn, args ...string) string {
	t.Helper()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b.WriteString("$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n")
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimRight(line, "\r\n")
}

func TestStartRedis(t *testing.T) {
	a := Redis(t)
	b := Redis(t)
	if a.Addr == b.Addr {
		t.Fatalf("two servers on one address %s", a.Addr)
	}
	for _, r := range []*RedisServer{a, b} {
		if !strings.HasPrefix(r.Addr, "127.0.0.1:") {
			t.Fatalf("address %s is not loopback", r.Addr)
		}
		conn, err := net.Dial("tcp", r.Addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := command(t, conn, "PING"); got != "+PONG" {
			t.Fatalf("PING: %q", got)
		}
		if got := command(t, conn, "CONFIG", "GET", "appendonly"); got != "*2" {
			t.Fatalf("CONFIG GET: %q", got)
		}
		conn.Close()
	}
	// Nothing is written to the working directory (no RDB, no AOF).
	conn, err := net.Dial("tcp", a.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := command(t, conn, "SET", "k", "v"); got != "+OK" {
		t.Fatalf("SET: %q", got)
	}
	entries, err := os.ReadDir(a.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("unexpected file %s in the server directory", e.Name())
	}
}

func TestStartRedisPassword(t *testing.T) {
	r := RedisWithConfig(t, RedisConfig{Password: "s3cret"})
	conn, err := net.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := command(t, conn, "PING"); !strings.HasPrefix(got, "-NOAUTH") {
		t.Fatalf("PING without AUTH: %q", got)
	}
	if got := command(t, conn, "AUTH", "s3cret"); got != "+OK" {
		t.Fatalf("AUTH: %q", got)
	}
	if got := command(t, conn, "PING"); got != "+PONG" {
		t.Fatalf("PING: %q", got)
	}
}

func TestStartRedisTLS(t *testing.T) {
	files := NewTLSFiles(t)
	r := RedisWithConfig(t, RedisConfig{TLS: files})
	pemCA, err := os.ReadFile(files.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCA) {
		t.Fatal("CA file has no certificate")
	}
	conn, err := tls.Dial("tcp", r.Addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := command(t, conn, "PING"); got != "+PONG" {
		t.Fatalf("PING over TLS: %q", got)
	}
	// A plain-text client gets no answer it can use.
	plain, err := net.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	_ = plain.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := plain.Write([]byte("PING\r\n")); err == nil {
		if line, err := bufio.NewReader(plain).ReadString('\n'); err == nil && strings.Contains(line, "PONG") {
			t.Fatal("plain-text PING answered on the TLS port")
		}
	}
}

func TestStartRedisCleanupStopsServer(t *testing.T) {
	var addr string
	t.Run("server", func(t *testing.T) {
		addr = Redis(t).Addr
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return // stopped
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s still accepts connections after its test ended", addr)
		}
		<-time.After(20 * time.Millisecond)
	}
}
