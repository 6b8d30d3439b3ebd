package app

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// TLS for `runnel serve`: the SDKs that speak only HTTP/2 for
// SubscribeToShard (Java, JavaScript) need HTTPS to negotiate it.

const (
	// tlsDirName holds the self-signed certificate inside the data dir.
	tlsDirName   = "tls"
	certFileName = "cert.pem"
	keyFileName  = "key.pem"
	// selfSignedValidity is how long a generated certificate is valid; it
	// is made again when less than selfSignedRenewal of it is left.
	selfSignedValidity = 2 * 365 * 24 * time.Hour
	selfSignedRenewal  = 30 * 24 * time.Hour
)

// tlsEnabled reports whether cfg asks for HTTPS.
func (c Config) tlsEnabled() bool { return c.TLS || c.TLSCert != "" }

// serverTLS returns the TLS configuration of the listener and the file a
// client should trust: TLSCert when given, otherwise the self-signed
// certificate in the data dir, made on first use and reused after.
func (c Config) serverTLS(now time.Time) (*tls.Config, string, error) {
	certFile, keyFile := c.TLSCert, c.TLSKey
	if certFile == "" {
		dir := filepath.Join(c.DataDir, tlsDirName)
		certFile, keyFile = filepath.Join(dir, certFileName), filepath.Join(dir, keyFileName)
		if err := ensureSelfSigned(certFile, keyFile, tlsHosts(c.Listen), now); err != nil {
			return nil, "", fmt.Errorf("self-signed certificate in %s: %w", dir, err)
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, "", fmt.Errorf("loading TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		// HTTP/2 first: SubscribeToShard needs it for most SDKs.
		NextProtos: []string{"h2", "http/1.1"},
	}, certFile, nil
}

// tlsHosts are the names a self-signed certificate covers: the loopback
// addresses and localhost, the host of the listen address, and this
// machine's name when listening on every interface.
func tlsHosts(listen string) []string {
	hosts := []string{"127.0.0.1", "::1", "localhost"}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return hosts
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if name, err := os.Hostname(); err == nil && name != "" {
			host = name
		} else {
			host = ""
		}
	}
	if host != "" && !slices.Contains(hosts, host) {
		hosts = append(hosts, host)
	}
	return hosts
}

// ensureSelfSigned keeps a usable self-signed certificate at certFile and
// keyFile: an existing one is reused while it is valid for long enough
// and covers every host, otherwise a new one replaces it.
func ensureSelfSigned(certFile, keyFile string, hosts []string, now time.Time) error {
	if ok, err := selfSignedUsable(certFile, keyFile, hosts, now); err != nil || ok {
		return err
	}
	certPEM, keyPEM, err := newSelfSigned(hosts, now)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return err
	}
	// The key first: a certificate on disk always has its key.
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(certFile, certPEM, 0o644)
}

func selfSignedUsable(certFile, keyFile string, hosts []string, now time.Time) (bool, error) {
	certPEM, err := os.ReadFile(certFile)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil || len(pair.Certificate) == 0 {
		return false, nil // damaged or mismatched: make a new one
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || !bytes.Equal(block.Bytes, pair.Certificate[0]) {
		return false, nil
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || now.Before(cert.NotBefore) || now.Add(selfSignedRenewal).After(cert.NotAfter) {
		return false, nil
	}
	for _, h := range hosts {
		if cert.VerifyHostname(h) != nil {
			return false, nil
		}
	}
	return true, nil
}

// newSelfSigned makes an ECDSA P-256 certificate for hosts that is its own
// authority, so a client can trust it directly (AWS_CA_BUNDLE,
// NODE_EXTRA_CA_CERTS, a Go x509.CertPool).
func newSelfSigned(hosts []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"runnel"}, CommonName: "runnel serve"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it into place, so path never holds half a file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename there is nothing to remove
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// tlsListener hands TLS connections to http.Server as if they were plain
// ones, so that HTTP/2 is recognised by its connection preface and not
// only when ALPN chose it: the AWS SDK for Java v2, and so the KCL, starts
// HTTP/2 over TLS without ALPN by default, which AWS endpoints accept.
// HTTP/1.1 and ALPN "h2" clients are served as before. The handshake runs
// on the connection's first read, under the server's ReadHeaderTimeout.
// Requests carry no Request.TLS (nothing in runnel reads it).
type tlsListener struct {
	net.Listener
	cfg *tls.Config
}

func (l tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	// Only net.Conn's methods: a *tls.Conn, or anything with
	// ConnectionState, would make http.Server skip the preface check.
	return struct{ net.Conn }{tls.Server(c, l.cfg)}, nil
}
