package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
	"unicode/utf8"
)

// Resource policies (PutResourcePolicy) grant or deny Kinesis actions on a
// stream or consumer to principals, in the IAM policy language. runnel
// reads the part of the language that has meaning for its keys:
//
//   - Principal "*" or {"AWS": ...} naming the account ("123456789012" or
//     "arn:aws:iam::123456789012:root": every key of the account), a key
//     ("arn:aws:iam::123456789012:user/KEYID") or "*". Other principal
//     kinds (Service, Federated, CanonicalUser) are accepted and match no
//     key. NotPrincipal, only in a Deny as IAM allows it, matches every
//     key it does not name.
//   - Action and NotAction: "kinesis:Name" with * and ? wildcards, case
//     insensitive, or "*".
//   - Resource and NotResource: ARNs with * and ? wildcards.
//   - Condition: runnel has none of the request context IAM conditions
//     test, so a statement with a Condition never allows, and a Deny with
//     a Condition always applies: uncertainty refuses, never grants.
//
// An explicit Deny wins over every Allow and over the key's own scopes.

// MaxPolicyBytes is the largest policy document accepted (20 KiB, the
// size IAM allows resource-based policies).
const MaxPolicyBytes = 20 << 10

// Decision is what a policy says of one request.
type Decision int

const (
	// NoDecision: no statement applies.
	NoDecision Decision = iota
	// Allowed: an Allow statement applies and no Deny does.
	Allowed
	// Denied: a Deny statement applies.
	Denied
)

// Principal is who makes a request: a key of an account.
type Principal struct {
	Account string
	KeyID   string
}

// ARN is the principal's IAM user ARN, as error messages name it.
func (p Principal) ARN() string {
	return "arn:aws:iam::" + p.Account + ":user/" + url.PathEscape(p.KeyID)
}

// Policy is a parsed resource policy. It is immutable and safe for
// concurrent use.
type Policy struct {
	statements []statement
}

type statement struct {
	deny         bool
	notPrincipal bool
	anyone       bool     // Principal "*" or {"AWS": "*"}
	principals   []string // AWS principal values
	notAction    bool
	actions      []string // lower-cased patterns
	notResource  bool
	resources    []string
	conditional  bool
}

// rawStatement is one statement as written; a member may be a string or a
// list of strings.
type rawStatement struct {
	Sid          *string         `json:"Sid"`
	Effect       *string         `json:"Effect"`
	Principal    json.RawMessage `json:"Principal"`
	NotPrincipal json.RawMessage `json:"NotPrincipal"`
	Action       json.RawMessage `json:"Action"`
	NotAction    json.RawMessage `json:"NotAction"`
	Resource     json.RawMessage `json:"Resource"`
	NotResource  json.RawMessage `json:"NotResource"`
	Condition    json.RawMessage `json:"Condition"`
}

// ErrInvalidPolicy is wrapped by every error ParsePolicy returns.
var ErrInvalidPolicy = errors.New("invalid resource policy")

func policyError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidPolicy, fmt.Sprintf(format, args...))
}

// ParsePolicy reads and checks a resource policy document.
func ParsePolicy(doc string) (*Policy, error) {
	if len(doc) > MaxPolicyBytes {
		return nil, policyError("the policy is %d bytes; the limit is %d", len(doc), MaxPolicyBytes)
	}
	if !utf8.ValidString(doc) {
		return nil, policyError("the policy is not valid UTF-8")
	}
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.DisallowUnknownFields()
	var raw struct {
		Version   *string         `json:"Version"`
		ID        *string         `json:"Id"`
		Statement json.RawMessage `json:"Statement"`
	}
	if err := dec.Decode(&raw); err != nil {
		return nil, policyError("the policy is not a JSON policy document (Version, Id, Statement): %v", err)
	}
	if dec.More() {
		return nil, policyError("the policy has data after its JSON document")
	}
	if raw.Version != nil && *raw.Version != "2012-10-17" && *raw.Version != "2008-10-17" {
		return nil, policyError("Version %q is not a policy language version (2012-10-17 or 2008-10-17)", *raw.Version)
	}
	var stmts []rawStatement
	if err := oneOrMany(raw.Statement, &stmts); err != nil || len(stmts) == 0 {
		return nil, policyError("Statement must be a statement object or a non-empty list of them")
	}
	p := &Policy{}
	for i, rs := range stmts {
		st, err := parseStatement(rs)
		if err != nil {
			return nil, policyError("statement %d: %v", i+1, err)
		}
		p.statements = append(p.statements, st)
	}
	return p, nil
}

// oneOrMany decodes a JSON value that is either one T or a list of them.
func oneOrMany[T any](raw json.RawMessage, out *[]T) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return errors.New("missing")
	}
	strict := func(b []byte, v any) error {
		d := json.NewDecoder(bytes.NewReader(b))
		d.DisallowUnknownFields()
		return d.Decode(v)
	}
	if raw[0] == '[' {
		return strict(raw, out)
	}
	var one T
	if err := strict(raw, &one); err != nil {
		return err
	}
	*out = []T{one}
	return nil
}

func parseStatement(rs rawStatement) (statement, error) {
	var st statement
	switch {
	case rs.Effect == nil:
		return st, errors.New("Effect is required")
	case *rs.Effect == "Deny":
		st.deny = true
	case *rs.Effect != "Allow":
		return st, fmt.Errorf("Effect %q must be Allow or Deny", *rs.Effect)
	}
	principal := rs.Principal
	if len(rs.NotPrincipal) > 0 {
		if len(principal) > 0 {
			return st, errors.New("give Principal or NotPrincipal, not both")
		}
		if !st.deny {
			return st, errors.New("NotPrincipal may be used only with Effect Deny")
		}
		principal, st.notPrincipal = rs.NotPrincipal, true
	}
	if len(principal) == 0 {
		return st, errors.New("a resource policy statement must name a Principal")
	}
	var err error
	if st.anyone, st.principals, err = parsePrincipal(principal); err != nil {
		return st, err
	}
	if st.notAction, st.actions, err = either(rs.Action, rs.NotAction, "Action"); err != nil {
		return st, err
	}
	for i, a := range st.actions {
		if a != "*" && !strings.HasPrefix(strings.ToLower(a), "kinesis:") {
			return st, fmt.Errorf("action %q is not a Kinesis action (kinesis:Name)", a)
		}
		st.actions[i] = strings.ToLower(a)
	}
	if st.notResource, st.resources, err = either(rs.Resource, rs.NotResource, "Resource"); err != nil {
		return st, err
	}
	for _, r := range st.resources {
		if r != "*" && !strings.HasPrefix(r, "arn:") {
			return st, fmt.Errorf("resource %q is not an ARN", r)
		}
	}
	if c := bytes.TrimSpace(rs.Condition); len(c) > 0 && !bytes.Equal(c, []byte("null")) {
		var cond map[string]json.RawMessage
		if err := json.Unmarshal(c, &cond); err != nil {
			return st, errors.New("Condition must be an object")
		}
		st.conditional = len(cond) > 0
	}
	return st, nil
}

// either reads a member that may be written positively (Action) or
// negatively (NotAction), exactly one of them.
func either(pos, neg json.RawMessage, name string) (negated bool, values []string, err error) {
	raw := pos
	if len(neg) > 0 {
		if len(pos) > 0 {
			return false, nil, fmt.Errorf("give %s or Not%s, not both", name, name)
		}
		raw, negated = neg, true
	}
	if err := oneOrMany(raw, &values); err != nil || len(values) == 0 {
		return false, nil, fmt.Errorf("%s must be a string or a non-empty list of strings", name)
	}
	for _, v := range values {
		if v == "" {
			return false, nil, fmt.Errorf("%s must not be empty", name)
		}
	}
	return negated, values, nil
}

// parsePrincipal reads "*" or a map of principal kinds to one or many
// values; only the AWS kind can match a runnel key.
func parsePrincipal(raw json.RawMessage) (anyone bool, aws []string, err error) {
	var star string
	if json.Unmarshal(raw, &star) == nil {
		if star != "*" {
			return false, nil, errors.New(`Principal must be "*" or an object such as {"AWS": "123456789012"}`)
		}
		return true, nil, nil
	}
	var kinds map[string]json.RawMessage
	if err := json.Unmarshal(raw, &kinds); err != nil || len(kinds) == 0 {
		return false, nil, errors.New(`Principal must be "*" or an object such as {"AWS": "123456789012"}`)
	}
	for kind, v := range kinds {
		var values []string
		if err := oneOrMany(v, &values); err != nil || len(values) == 0 {
			return false, nil, fmt.Errorf("Principal %s must be a string or a non-empty list of strings", kind)
		}
		switch kind {
		case "AWS":
			for _, p := range values {
				if p == "*" {
					anyone = true
				} else if !validAWSPrincipal(p) {
					return false, nil, fmt.Errorf("Principal AWS %q is not an account id or an IAM ARN", p)
				}
			}
			aws = append(aws, values...)
		case "Service", "Federated", "CanonicalUser":
		default:
			return false, nil, fmt.Errorf("Principal kind %q is not AWS, Service, Federated or CanonicalUser", kind)
		}
	}
	return anyone, aws, nil
}

func validAWSPrincipal(p string) bool {
	if len(p) == 12 && strings.Trim(p, "0123456789") == "" {
		return true
	}
	parts := strings.SplitN(p, ":", 6)
	return len(parts) == 6 && parts[0] == "arn" && strings.HasPrefix(parts[1], "aws") && (parts[2] == "iam" || parts[2] == "sts") && parts[5] != ""
}

// Decide returns what the policy says of principal calling action (a
// Kinesis action name such as "PutRecord") on resource (an ARN).
func (p *Policy) Decide(who Principal, action, resource string) Decision {
	if p == nil {
		return NoDecision
	}
	act := "kinesis:" + strings.ToLower(action)
	d := NoDecision
	for _, st := range p.statements {
		if st.matchesPrincipal(who) == st.notPrincipal ||
			matchAny(st.actions, act) == st.notAction ||
			matchAny(st.resources, resource) == st.notResource {
			continue
		}
		if st.deny {
			return Denied
		}
		if !st.conditional {
			d = Allowed
		}
	}
	return d
}

func (st statement) matchesPrincipal(who Principal) bool {
	if st.anyone {
		return true
	}
	for _, p := range st.principals {
		if p == who.Account || p == "arn:aws:iam::"+who.Account+":root" || p == who.ARN() {
			return true
		}
	}
	return false
}

// matchAny reports whether s matches one of the patterns (* any run of
// characters, ? one character).
func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if p == "*" || wildcard(p, s) {
			return true
		}
	}
	return false
}

// wildcard matches IAM's * and ? (path.Match also gives meaning to [ and
// \, so those are escaped first; and its * stops at /, so / is swapped
// for a character that cannot occur in either).
func wildcard(pattern, s string) bool {
	const slash = "\x00"
	r := strings.NewReplacer(`\`, `\\`, `[`, `\[`, `/`, slash)
	ok, err := path.Match(r.Replace(pattern), strings.ReplaceAll(s, "/", slash))
	return err == nil && ok
}

// RefusedByPolicy is the AccessDeniedException message for a request an
// explicit Deny in a resource policy refuses.
func RefusedByPolicy(who Principal, action, resource string) string {
	return fmt.Sprintf("User: %s is not authorized to perform: kinesis:%s on resource: %s with an explicit deny in a resource-based policy",
		who.ARN(), action, resource)
}
