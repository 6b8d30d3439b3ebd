package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/stretchr/testify/require"
)

func testKeys(t *testing.T) *Keys {
	t.Helper()
	ks, err := NewKeys([]Key{
		{ID: "AKIDADMIN", Secret: "admin-secret", All: true},
		{ID: "AKIDDEVICE", Secret: "device-secret", PutStreams: []string{"clicks"}},
	})
	require.NoError(t, err)
	return ks
}

// signed builds a request signed as aws-sdk-go-v2 signs one.
func signed(t *testing.T, id, secret, service string, at time.Time, body []byte) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:4567/", bytes.NewReader(body))
	require.NoError(t, err)
	r.Header.Set("Content-Type", "application/x-amz-json-1.1")
	r.Header.Set("X-Amz-Target", "Kinesis_20131202.ListStreams")
	sum := sha256.Sum256(body)
	require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: id, SecretAccessKey: secret},
		r, hex.EncodeToString(sum[:]), service, "eu-west-1", at))
	// What the server sees: Host moved out of the header map.
	r.Host = r.URL.Host
	return r
}

func TestVerify(t *testing.T) {
	ks := testKeys(t)
	now := time.Date(2024, 5, 24, 0, 10, 0, 0, time.UTC)
	body := []byte(`{}`)
	tests := []struct {
		name    string
		req     *http.Request
		body    []byte
		kind    error
		message string
	}{
		{"valid", signed(t, "AKIDADMIN", "admin-secret", "kinesis", now, body), body, nil, ""},
		{"4 minutes old", signed(t, "AKIDADMIN", "admin-secret", "kinesis", now.Add(-4*time.Minute), body), body, nil, ""},
		{"wrong secret", signed(t, "AKIDADMIN", "guess", "kinesis", now, body), body, ErrInvalidSignature, "The request signature we calculated does not match"},
		{"body changed", signed(t, "AKIDADMIN", "admin-secret", "kinesis", now, body), []byte(`{"Limit":1}`), ErrInvalidSignature, "does not match"},
		{"unknown key", signed(t, "AKIDNOBODY", "x", "kinesis", now, body), body, ErrUnknownKey, "The security token included in the request is invalid."},
		{"expired", signed(t, "AKIDADMIN", "admin-secret", "kinesis", now.Add(-10*time.Minute), body), body, ErrInvalidSignature,
			"Signature expired: 20240524T000000Z is now earlier than 20240524T000500Z (20240524T001000Z - 5 min.)"},
		{"from the future", signed(t, "AKIDADMIN", "admin-secret", "kinesis", now.Add(6*time.Minute), body), body, ErrInvalidSignature,
			"Signature not yet current: 20240524T001600Z is still later than 20240524T001500Z (20240524T001000Z + 5 min.)"},
		{"other service", signed(t, "AKIDADMIN", "admin-secret", "dynamodb", now, body), body, ErrInvalidSignature, "Credential should be scoped to correct service: 'kinesis'."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, err := ks.Verify(tc.req, tc.body, now)
			if tc.kind == nil {
				require.NoError(t, err)
				require.Equal(t, "AKIDADMIN", key.ID)
				return
			}
			require.ErrorIs(t, err, tc.kind)
			require.Contains(t, err.Error(), tc.message)
		})
	}
}

func TestVerifyMalformed(t *testing.T) {
	ks := testKeys(t)
	now := time.Now()
	r := signed(t, "AKIDADMIN", "admin-secret", "kinesis", now, nil)

	unsigned := r.Clone(context.Background())
	unsigned.Header.Del("Authorization")
	_, err := ks.Verify(unsigned, nil, now)
	require.ErrorIs(t, err, ErrMissingToken)
	require.EqualError(t, err, "Missing Authentication Token")

	bad := r.Clone(context.Background())
	bad.Header.Set("Authorization", "X")
	_, err = ks.Verify(bad, nil, now)
	require.ErrorIs(t, err, ErrIncompleteSignature)
	require.Contains(t, err.Error(), "Authorization header requires 'Credential' parameter.")

	scope := r.Clone(context.Background())
	scope.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDADMIN/20240524/kinesis, SignedHeaders=host, Signature=00")
	_, err = ks.Verify(scope, nil, now)
	require.ErrorIs(t, err, ErrIncompleteSignature)
	require.Contains(t, err.Error(), "Credential must have exactly 5 slash-delimited elements")

	nodate := r.Clone(context.Background())
	nodate.Header.Del("X-Amz-Date")
	_, err = ks.Verify(nodate, nil, now)
	require.ErrorIs(t, err, ErrIncompleteSignature)
}

func TestAllows(t *testing.T) {
	ks := testKeys(t)
	admin, device := ks.Lookup("AKIDADMIN"), ks.Lookup("AKIDDEVICE")
	require.True(t, admin.Allows(Read, "anything"))
	require.True(t, device.Allows(Put, "clicks"))
	require.False(t, device.Allows(Put, "orders"))
	require.False(t, device.Allows(Read, "clicks"))
	any, err := NewKeys([]Key{{ID: "a", Secret: "s", ReadStreams: []string{AnyStream}}})
	require.NoError(t, err)
	require.True(t, any.Lookup("a").Allows(Read, "orders"))
	require.False(t, any.Lookup("a").Allows(Put, "orders"))
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
		return p
	}
	ks, err := Load(write("ok.yaml", `
keys:
  - id: AKIDADMIN
    secret: s1
    all: true
  - id: AKIDDEVICE
    secret: s2
    put: [clicks]
    read: [clicks]
`))
	require.NoError(t, err)
	require.Equal(t, 2, ks.Len())
	require.True(t, ks.Lookup("AKIDDEVICE").Allows(Read, "clicks"))

	_, err = Load(write("bad.yaml", `
keys:
  - id: A
    secret: ""
    all: true
  - id: A
    secret: s
  - secret: s
    pput: [x]
`))
	require.Error(t, err)
	require.Contains(t, err.Error(), "pput", "unknown fields are refused")

	_, err = Load(write("bad2.yaml", `
keys:
  - id: A
    secret: ""
    all: true
  - id: A
    secret: s
    put: [x]
  - id: B
    secret: s
`))
	require.Error(t, err)
	for _, want := range []string{"key 1 (A): secret must not be empty", "key 2 (A): id is listed twice", "key 3 (B): allows nothing"} {
		require.Contains(t, err.Error(), want)
	}
	_, err = Load(filepath.Join(dir, "absent.yaml"))
	require.True(t, errors.Is(err, os.ErrNotExist))
	require.Equal(t, "AKIDADMIN", ks.Lookup("AKIDADMIN").LogValue().Group()[0].Value.String())
}

func TestKeyAccount(t *testing.T) {
	t.Parallel()
	_, err := NewKeys([]Key{{ID: "A", Secret: "s", All: true, Account: "111111111111"}})
	require.NoError(t, err)
	_, err = NewKeys([]Key{{ID: "A", Secret: "s", All: true, Account: "1111"}})
	require.ErrorContains(t, err, `key 1 (A): account "1111": want 12 digits`)
}
