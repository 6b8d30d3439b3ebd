package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
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
// within MaxSkew of now, and returns the signing key.
//
// The signature is recomputed with aws-sdk-go-v2's signer over a copy of
// the request that holds exactly the headers the client signed, at the
// time it signed them, and compared in constant time. Any region in the
// credential scope is accepted.
func (ks *Keys) Verify(r *http.Request, body []byte, now time.Time) (*Key, error) {
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

	want, err := signature(r, body, a, key, signed)
	if err != nil {
		return nil, fail(ErrInvalidSignature, "%s", mismatched)
	}
	if subtle.ConstantTimeCompare([]byte(want), []byte(a.signature)) != 1 {
		return nil, fail(ErrInvalidSignature, "%s", mismatched)
	}
	return key, nil
}

// authorization is a parsed Authorization header.
type authorization struct {
	keyID, scopeDate, region, service string
	signedHeaders                     []string
	signature                         string
	date                              string // X-Amz-Date
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

// signature recomputes the signature of r as the client made it.
func signature(r *http.Request, body []byte, a authorization, key *Key, signed time.Time) (string, error) {
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
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: key.ID, SecretAccessKey: key.Secret}
	err := v4.NewSigner().SignHTTP(context.Background(), creds, cp, hex.EncodeToString(sum[:]), a.service, a.region, signed,
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

// Refused builds the AccessDeniedException message AWS sends when an
// identity may not call an action on a resource.
func Refused(accountID, keyID, action, resource string) string {
	return fmt.Sprintf("User: arn:aws:iam::%s:user/%s is not authorized to perform: kinesis:%s on resource: %s because no identity-based policy allows the kinesis:%s action",
		accountID, url.PathEscape(keyID), action, resource, action)
}
