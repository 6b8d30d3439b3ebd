package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/stretchr/testify/require"
)

func hashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// resign replaces r's Authorization with one whose SignedHeaders are
// names and whose signature is right for them.
func resign(t *testing.T, r *http.Request, body []byte, names ...string) {
	t.Helper()
	a, err := parseAuthorization(r.Header.Get("Authorization"), r.Header.Get("X-Amz-Date"))
	require.NoError(t, err)
	a.signedHeaders = names
	sig, err := canonicalSignature(r, hashOf(body), a, &Key{ID: a.keyID, Secret: "admin-secret"})
	require.NoError(t, err)
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+a.keyID+"/"+a.scopeDate+"/"+a.region+"/"+a.service+
		"/aws4_request, SignedHeaders="+strings.Join(names, ";")+", Signature="+sig)
}

// TestCanonicalSignatureMatchesSDK holds the :authority path to the SDK's
// signer: over requests the SDK signs (with host), both agree.
func TestCanonicalSignatureMatchesSDK(t *testing.T) {
	now := time.Now()
	for _, body := range [][]byte{nil, []byte(`{}`), []byte(`{"StreamName":"a  b",  "Limit": 3}`)} {
		r := signed(t, "AKIDADMIN", "admin-secret", "kinesis", now, body)
		r.Header.Set("X-Extra", "  spaced   value ")
		require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: "AKIDADMIN", SecretAccessKey: "admin-secret"},
			r, hashOf(body), "kinesis", "eu-west-1", now))
		a, err := parseAuthorization(r.Header.Get("Authorization"), r.Header.Get("X-Amz-Date"))
		require.NoError(t, err)
		got, err := canonicalSignature(r, hashOf(body), a, &Key{ID: "AKIDADMIN", Secret: "admin-secret"})
		require.NoError(t, err)
		require.Equal(t, a.signature, got)
	}
}

func TestVerifyAuthority(t *testing.T) {
	ks := testKeys(t)
	now := time.Now()
	body := []byte(`{}`)
	r := signed(t, "AKIDADMIN", "admin-secret", "kinesis", now, body)
	// As an HTTP/2 client signs: the host as :authority, no host.
	resign(t, r, body, ":authority", "content-type", "x-amz-date", "x-amz-target")
	key, err := ks.Verify(r, body, now)
	require.NoError(t, err)
	require.Equal(t, "AKIDADMIN", key.ID)

	other := r.Clone(context.Background())
	other.Host = "127.0.0.1:9999"
	_, err = ks.Verify(other, body, now)
	require.ErrorIs(t, err, ErrInvalidSignature, "the :authority is signed")
}

// TestVerifyRequiredSignedHeaders: a signature that leaves out the
// operation, the content type or the host could be replayed as another
// request, so it is refused before anything else.
func TestVerifyRequiredSignedHeaders(t *testing.T) {
	ks := testKeys(t)
	now := time.Now()
	body := []byte(`{}`)
	all := []string{"content-type", "host", "x-amz-date", "x-amz-target"}
	for _, left := range all {
		t.Run(left, func(t *testing.T) {
			r := signed(t, "AKIDADMIN", "admin-secret", "kinesis", now, body)
			resign(t, r, body, slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == left })...)
			_, err := ks.Verify(r, body, now)
			require.ErrorIs(t, err, ErrIncompleteSignature)
			want := http.CanonicalHeaderKey(left)
			if left == "host" {
				want = "'Host' or ':authority'"
			}
			require.Contains(t, err.Error(), want)
			require.Contains(t, err.Error(), "must be a 'SignedHeader'")
		})
	}
}

// TestVerifyDeclaredHash: with X-Amz-Content-Sha256 the signature is
// verified before the body is read; the body must then hash to it.
func TestVerifyDeclaredHash(t *testing.T) {
	ks := testKeys(t)
	now := time.Now()
	body := []byte(`{"Limit":1}`)
	r := signed(t, "AKIDADMIN", "admin-secret", "kinesis", now, body)
	r.Header.Set("X-Amz-Content-Sha256", hashOf(body))
	require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: "AKIDADMIN", SecretAccessKey: "admin-secret"},
		r, hashOf(body), "kinesis", "eu-west-1", now))

	c, err := ks.Begin(r, now)
	require.NoError(t, err)
	require.True(t, c.Verified())
	require.Equal(t, "AKIDADMIN", c.Key().ID)
	sum := sha256.Sum256(body)
	key, err := c.Finish(sum[:])
	require.NoError(t, err)
	require.Equal(t, "AKIDADMIN", key.ID)
	other := sha256.Sum256([]byte(`{"Limit":2}`))
	_, err = c.Finish(other[:])
	require.ErrorIs(t, err, ErrInvalidSignature)
	require.Contains(t, err.Error(), "x-amz-content-sha256")

	wrong := r.Clone(context.Background())
	wrong.Header.Set("X-Amz-Content-Sha256", hashOf([]byte("other")))
	_, err = ks.Begin(wrong, now)
	require.ErrorIs(t, err, ErrInvalidSignature, "a forged declared hash fails before the body is read")

	unsigned := r.Clone(context.Background())
	unsigned.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	_, err = ks.Begin(unsigned, now)
	require.ErrorIs(t, err, ErrInvalidSignature)

	plain := signed(t, "AKIDADMIN", "admin-secret", "kinesis", now, body)
	c, err = ks.Begin(plain, now)
	require.NoError(t, err)
	require.False(t, c.Verified())
	require.Nil(t, c.Key(), "no key is trusted before the body is verified")
}

// FuzzParseAuthorization feeds the SigV4 parser and the checks that follow
// it arbitrary Authorization, X-Amz-Date and X-Amz-Content-Sha256 values:
// it never panics, and whatever it accepts has the shape it promises.
func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKIDADMIN/20240524/us-east-1/kinesis/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=abcd", "20240524T000000Z", "")
	f.Add("AWS4-HMAC-SHA256 Credential=AKIDADMIN/20240524/us-east-1/kinesis/aws4_request, SignedHeaders=:authority;x-amz-date, Signature=00", "20240524T000000Z", "UNSIGNED-PAYLOAD")
	f.Add("AWS4-HMAC-SHA256 Credential=/////, SignedHeaders=;;, Signature==", "2024", strings.Repeat("a", 64))
	f.Add("X", "", "")
	ks, err := NewKeys([]Key{{ID: "AKIDADMIN", Secret: "admin-secret", All: true}})
	if err != nil {
		f.Fatal(err)
	}
	now := time.Date(2024, 5, 24, 0, 1, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, header, date, declared string) {
		a, err := parseAuthorization(header, date)
		if err == nil {
			if a.keyID == "" && a.signature == "" {
				t.Fatalf("accepted %q without a credential or signature", header)
			}
			if len(a.signedHeaders) == 0 {
				t.Fatalf("accepted %q without signed headers", header)
			}
		}
		r, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:4567/", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		r.Header["Authorization"] = []string{header}
		r.Header["X-Amz-Date"] = []string{date}
		r.Header["X-Amz-Content-Sha256"] = []string{declared}
		r.Header.Set("X-Amz-Target", "Kinesis_20131202.ListStreams")
		if c, err := ks.Begin(r, now); err == nil {
			sum := sha256.Sum256([]byte("{}"))
			if _, err := c.Finish(sum[:]); err == nil {
				t.Fatalf("a guessed signature verified: %q", header)
			}
		} else if _, ok := err.(*Error); !ok {
			t.Fatalf("Begin returned %T, want *Error", err)
		}
	})
}
