package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Failure kinds of Verify. Every error Verify returns is an *Error wrapping
// one of these; its message is the one AWS sends for the same failure.
var (
	// ErrMissingToken means the request carries no signature
	// (MissingAuthenticationTokenException).
	ErrMissingToken = errors.New("missing authentication token")
	// ErrIncompleteSignature means the Authorization header is malformed
	// (IncompleteSignatureException).
	ErrIncompleteSignature = errors.New("incomplete signature")
	// ErrUnknownKey means no key has the access key id
	// (UnrecognizedClientException).
	ErrUnknownKey = errors.New("unrecognized client")
	// ErrInvalidSignature means the signature does not match, is scoped
	// wrongly or was made outside the allowed clock skew
	// (InvalidSignatureException).
	ErrInvalidSignature = errors.New("invalid signature")
)

// Error is a failed verification: Kind is one of the sentinels above, Msg
// the client-facing message.
type Error struct {
	Kind error
	Msg  string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Kind }

func fail(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

const (
	// MaxSkew is how far a request's X-Amz-Date may be from the server's
	// clock, as on AWS.
	MaxSkew = 5 * time.Minute
	// Service is the signing name requests must be scoped to.
	Service = "kinesis"

	algorithm  = "AWS4-HMAC-SHA256"
	amzDate    = "20060102T150405Z"
	scopeDate  = "20060102"
	mismatched = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)

// Verify checks that r, whose body has already been read into body, is
// signed with Signature Version 4 (Authorization header) by one of ks
// within MaxSkew of now, and returns the signing key. It is Begin followed
// by Finish.
func (ks *Keys) Verify(r *http.Request, body []byte, now time.Time) (*Key, error) {
	c, err := ks.Begin(r, now)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	return c.Finish(sum[:])
}

// Check is a request whose signature has been checked as far as its
// headers allow: see Begin. Finish completes it with the body.
type Check struct {
	r      *http.Request
	a      authorization
	key    *Key
	signed time.Time
	// declared is the body's SHA-256 the client declared in
	// X-Amz-Content-Sha256 (hex), "" when it declared none; the signature
	// covers it, so it is verified before the body is read.
	declared string
}

// Begin checks everything about r's signature that does not need its body:
// the Authorization header's form, the key, the date and its skew, the
// credential scope and the signed headers (Host or, over HTTP/2,
// :authority; X-Amz-Date; X-Amz-Target and Content-Type when present). When
// the client declared the body's hash in X-Amz-Content-Sha256 the signature
// itself is verified too (Verified reports it), so a request with a wrong
// signature is refused before its body is read; Finish then only compares
// the body with the declared hash.
func (ks *Keys) Begin(r *http.Request, now time.Time) (*Check, error) {
	header := r.Header.Get("Authorization")
	_, presigned := r.URL.Query()["X-Amz-Algorithm"]
	switch {
	case header != "" && presigned:
		return nil, fail(ErrInvalidSignature, "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header.")
	case presigned:
		return nil, fail(ErrIncompleteSignature, "Query-string (presigned) authentication is not supported; sign the Authorization header.")
	case header == "":
		return nil, fail(ErrMissingToken, "Missing Authentication Token")
	}

	a, err := parseAuthorization(header, r.Header.Get("X-Amz-Date"))
	if err != nil {
		return nil, err
	}
	if err := a.requireSigned(r); err != nil {
		return nil, err
	}
	key := ks.Lookup(a.keyID)
	if key == nil {
		return nil, fail(ErrUnknownKey, "The security token included in the request is invalid.")
	}
	signed, err := time.Parse(amzDate, a.date)
	if err != nil {
		return nil, fail(ErrIncompleteSignature, "X-Amz-Date %q is not in the ISO 8601 basic format YYYYMMDD'T'HHMMSS'Z'.", a.date)
	}
	now = now.UTC().Truncate(time.Second)
	if signed.Before(now.Add(-MaxSkew)) {
		return nil, fail(ErrInvalidSignature, "Signature expired: %s is now earlier than %s (%s - 5 min.)",
			a.date, now.Add(-MaxSkew).Format(amzDate), now.Format(amzDate))
	}
	if signed.After(now.Add(MaxSkew)) {
		return nil, fail(ErrInvalidSignature, "Signature not yet current: %s is still later than %s (%s + 5 min.)",
			a.date, now.Add(MaxSkew).Format(amzDate), now.Format(amzDate))
	}
	if a.scopeDate != signed.Format(scopeDate) {
		return nil, fail(ErrInvalidSignature, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.",
			a.scopeDate, signed.Format(scopeDate), a.date)
	}
	if a.service != Service {
		return nil, fail(ErrInvalidSignature, "Credential should be scoped to correct service: '%s'.", Service)
	}
	c := &Check{r: r, a: a, key: key, signed: signed}
	if v := r.Header.Get("X-Amz-Content-Sha256"); v != "" {
		if len(v) != sha256.Size*2 || strings.ToLower(v) != v || !isHex(v) {
			return nil, fail(ErrInvalidSignature, "X-Amz-Content-Sha256 must be the lower-case hex SHA-256 of the body; runnel does not accept %q.", v)
		}
		if err := c.verify(v); err != nil {
			return nil, err
		}
		c.declared = v
	}
	return c, nil
}

// Verified reports whether the signature is already verified over the
// headers (the client declared the body's hash); the request's key may
// then be trusted before the body is read, as Key returns it. A nil Check
// (no authentication) is not verified.
func (c *Check) Verified() bool { return c != nil && c.declared != "" }

// Key is the signing key, once Verified; nil before and for a nil Check.
func (c *Check) Key() *Key {
	if c.Verified() {
		return c.key
	}
	return nil
}

// Finish completes the verification with the SHA-256 of the request's
// body, computed as the body was read (sha256.New fed by the reader), and
// returns the signing key.
func (c *Check) Finish(bodySum []byte) (*Key, error) {
	got := hex.EncodeToString(bodySum)
	if c.declared != "" {
		if subtle.ConstantTimeCompare([]byte(got), []byte(c.declared)) != 1 {
			return nil, fail(ErrInvalidSignature, "The provided 'x-amz-content-sha256' header does not match what was computed.")
		}
		return c.key, nil
	}
	if err := c.verify(got); err != nil {
		return nil, err
	}
	return c.key, nil
}

func (c *Check) verify(payloadHash string) error {
	want, err := signature(c.r, payloadHash, c.a, c.key, c.signed)
	if err != nil {
		return fail(ErrInvalidSignature, "%s", mismatched)
	}
	if subtle.ConstantTimeCompare([]byte(want), []byte(c.a.signature)) != 1 {
		return fail(ErrInvalidSignature, "%s", mismatched)
	}
	return nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// authorization is a parsed Authorization header.
type authorization struct {
	keyID, scopeDate, region, service string
	signedHeaders                     []string
	signature                         string
	date                              string // X-Amz-Date
}

// requireSigned refuses a signature that leaves out a header AWS requires
// to be signed: the host (Host, or :authority as HTTP/2 clients sign it),
// X-Amz-Date, and X-Amz-Target, Content-Type and X-Amz-Content-Sha256
// whenever the request carries them. Otherwise a signed request could be
// replayed as another operation or in another wire format.
func (a authorization) requireSigned(r *http.Request) error {
	has := func(name string) bool { return slices.Contains(a.signedHeaders, name) }
	if !has("host") && !has(":authority") {
		return fail(ErrIncompleteSignature, "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
	}
	for _, name := range []string{"x-amz-date", "x-amz-target", "content-type", "x-amz-content-sha256"} {
		if name != "x-amz-date" && r.Header.Get(name) == "" {
			continue
		}
		if !has(name) {
			return fail(ErrIncompleteSignature, "'%s' must be a 'SignedHeader' in the AWS Authorization.", http.CanonicalHeaderKey(name))
		}
	}
	return nil
}

func parseAuthorization(header, date string) (authorization, error) {
	var a authorization
	alg, rest, _ := strings.Cut(header, " ")
	params := map[string]string{}
	for _, part := range strings.FieldsFunc(rest, func(r rune) bool { return r == ',' || r == ' ' }) {
		k, v, ok := strings.Cut(part, "=")
		if ok {
			params[k] = v
		}
	}
	var msg strings.Builder
	for _, p := range []string{"Credential", "Signature", "SignedHeaders"} {
		if params[p] == "" {
			fmt.Fprintf(&msg, "Authorization header requires '%s' parameter. ", p)
		}
	}
	if date == "" {
		msg.WriteString("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header; runnel needs 'X-Amz-Date'. ")
	}
	if msg.Len() > 0 {
		return a, fail(ErrIncompleteSignature, "%sAuthorization=%s", msg.String(), header)
	}
	if alg != algorithm {
		return a, fail(ErrIncompleteSignature, "Unsupported AWS 'algorithm': '%s'; runnel accepts %s.", alg, algorithm)
	}
	scope := strings.Split(params["Credential"], "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return a, fail(ErrIncompleteSignature, "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '%s'", params["Credential"])
	}
	a.keyID, a.scopeDate, a.region, a.service = scope[0], scope[1], scope[2], scope[3]
	a.signedHeaders = strings.Split(params["SignedHeaders"], ";")
	a.signature = params["Signature"]
	a.date = date
	return a, nil
}

// signature recomputes the signature of r as the client made it, over the
// given payload hash. Requests that sign the host as Host go through
// aws-sdk-go-v2's signer; the signer always signs "host", so requests that
// sign it as HTTP/2's :authority (the AWS SDK for JavaScript v3 over
// HTTP/2) go through canonicalSignature, which the tests hold equal to the
// SDK's signer on every request both can sign.
func signature(r *http.Request, payloadHash string, a authorization, key *Key, signed time.Time) (string, error) {
	if slices.Contains(a.signedHeaders, ":authority") {
		return canonicalSignature(r, payloadHash, a, key)
	}
	u := *r.URL
	u.Host = r.Host
	cp := &http.Request{Method: r.Method, URL: &u, Host: r.Host, Header: http.Header{}}
	for _, name := range a.signedHeaders {
		switch name {
		case "host":
			// The signer always signs the request's Host.
		case "content-length":
			cp.ContentLength = r.ContentLength
		case "x-amz-date":
			// The signer sets it from the signing time.
		default:
			values := r.Header.Values(name)
			if len(values) == 0 {
				return "", fmt.Errorf("signed header %s is absent", name)
			}
			cp.Header[http.CanonicalHeaderKey(name)] = values
		}
	}
	creds := aws.Credentials{AccessKeyID: key.ID, SecretAccessKey: key.Secret}
	err := v4.NewSigner().SignHTTP(context.Background(), creds, cp, payloadHash, a.service, a.region, signed,
		func(o *v4.SignerOptions) { o.DisableSessionToken = true })
	if err != nil {
		return "", err
	}
	_, sig, ok := strings.Cut(cp.Header.Get("Authorization"), "Signature=")
	if !ok {
		return "", errors.New("signer produced no signature")
	}
	return sig, nil
}

// canonicalSignature computes the Signature Version 4 signature of r over
// exactly the headers a names, in its order, as the AWS documentation
// defines it ("Create a canonical request", "Create a string to sign",
// "Calculate the signature"). The host is signed under whichever name the
// client used. Kinesis requests go to the path / without a query; others
// are refused rather than canonicalised here.
func canonicalSignature(r *http.Request, payloadHash string, a authorization, key *Key) (string, error) {
	if (r.URL.Path != "/" && r.URL.Path != "") || r.URL.RawQuery != "" {
		return "", errors.New("only the path / without a query is signed this way")
	}
	var cr strings.Builder
	cr.WriteString(r.Method + "\n/\n\n")
	for _, name := range a.signedHeaders {
		var values []string
		switch name {
		case "host", ":authority":
			values = []string{r.Host}
		case "content-length":
			values = []string{strconv.FormatInt(r.ContentLength, 10)}
		default:
			values = r.Header.Values(name)
		}
		if len(values) == 0 {
			return "", fmt.Errorf("signed header %s is absent", name)
		}
		for i, v := range values {
			values[i] = strings.Join(strings.Fields(v), " ")
		}
		cr.WriteString(name + ":" + strings.Join(values, ",") + "\n")
	}
	cr.WriteString("\n" + strings.Join(a.signedHeaders, ";") + "\n" + payloadHash)
	crSum := sha256.Sum256([]byte(cr.String()))
	scope := a.scopeDate + "/" + a.region + "/" + a.service + "/aws4_request"
	toSign := algorithm + "\n" + a.date + "\n" + scope + "\n" + hex.EncodeToString(crSum[:])
	k := []byte("AWS4" + key.Secret)
	for _, part := range []string{a.scopeDate, a.region, a.service, "aws4_request", toSign} {
		m := hmac.New(sha256.New, k)
		m.Write([]byte(part))
		k = m.Sum(nil)
	}
	return hex.EncodeToString(k), nil
}

// Refused builds the AccessDeniedException message AWS sends when an
// identity may not call an action on a resource.
func Refused(accountID, keyID, action, resource string) string {
	return fmt.Sprintf("User: arn:aws:iam::%s:user/%s is not authorized to perform: kinesis:%s on resource: %s because no identity-based policy allows the kinesis:%s action",
		accountID, url.PathEscape(keyID), action, resource, action)
}
