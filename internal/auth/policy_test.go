package auth

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const streamARN = "arn:aws:kinesis:us-east-1:000000000000:stream/orders"

func TestParsePolicyRefuses(t *testing.T) {
	t.Parallel()
	stmt := func(s string) string { return `{"Version":"2012-10-17","Statement":[` + s + `]}` }
	for _, tc := range []struct{ name, doc, want string }{
		{"not JSON", `Allow everyone`, "not a JSON policy document"},
		{"unknown member", `{"Statement":[],"Extra":1}`, "not a JSON policy document"},
		{"two documents", `{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}} {}`, "data after"},
		{"bad version", `{"Version":"2020-01-01","Statement":[]}`, "Version"},
		{"no statement", `{"Version":"2012-10-17"}`, "Statement must be"},
		{"empty statements", stmt(``), "Statement must be"},
		{"no effect", stmt(`{"Principal":"*","Action":"*","Resource":"*"}`), "Effect is required"},
		{"bad effect", stmt(`{"Effect":"Maybe","Principal":"*","Action":"*","Resource":"*"}`), "Allow or Deny"},
		{"no principal", stmt(`{"Effect":"Allow","Action":"*","Resource":"*"}`), "must name a Principal"},
		{"principal and not", stmt(`{"Effect":"Allow","Principal":"*","NotPrincipal":"*","Action":"*","Resource":"*"}`), "not both"},
		{"allow not principal", stmt(`{"Effect":"Allow","NotPrincipal":{"AWS":"111111111111"},"Action":"*","Resource":"*"}`), "only with Effect Deny"},
		{"bad principal", stmt(`{"Effect":"Allow","Principal":"everyone","Action":"*","Resource":"*"}`), "Principal must be"},
		{"bad AWS principal", stmt(`{"Effect":"Allow","Principal":{"AWS":"bob"},"Action":"*","Resource":"*"}`), "not an account id"},
		{"bad principal kind", stmt(`{"Effect":"Allow","Principal":{"Martian":"x"},"Action":"*","Resource":"*"}`), "Principal kind"},
		{"no action", stmt(`{"Effect":"Allow","Principal":"*","Resource":"*"}`), "Action must be"},
		{"other service", stmt(`{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}`), "not a Kinesis action"},
		{"no resource", stmt(`{"Effect":"Allow","Principal":"*","Action":"*"}`), "Resource must be"},
		{"resource not ARN", stmt(`{"Effect":"Allow","Principal":"*","Action":"*","Resource":"orders"}`), "not an ARN"},
		{"unknown statement member", stmt(`{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*","When":"now"}`), "Statement must be"},
		{"condition not object", stmt(`{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*","Condition":"x"}`), "Condition must be"},
		{"too large", stmt(`{"Sid":"` + strings.Repeat("x", MaxPolicyBytes) + `","Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}`), "the limit is 20480"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePolicy(tc.doc)
			require.ErrorIs(t, err, ErrInvalidPolicy)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestPolicyDecide(t *testing.T) {
	t.Parallel()
	p, err := ParsePolicy(`{"Version":"2012-10-17","Id":"p","Statement":[
		{"Sid":"writers","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::000000000000:user/AKIDDEVICE","111111111111"]},
		 "Action":["kinesis:Put*","kinesis:DescribeStreamSummary"],"Resource":"arn:aws:kinesis:us-east-1:000000000000:stream/ord?rs"},
		{"Effect":"Deny","Principal":"*","Action":"kinesis:DeleteStream","Resource":"*"},
		{"Effect":"Allow","Principal":{"AWS":"*"},"NotAction":"kinesis:Get*","NotResource":"arn:aws:kinesis:*:*:stream/orders","Condition":{"Bool":{"aws:SecureTransport":"true"}}},
		{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"kinesis:*","Resource":"*"}
	]}`)
	require.NoError(t, err)
	device := Principal{Account: "000000000000", KeyID: "AKIDDEVICE"}
	other := Principal{Account: "000000000000", KeyID: "AKIDOTHER"}
	stranger := Principal{Account: "222222222222", KeyID: "AKIDX"}
	for _, tc := range []struct {
		who      Principal
		action   string
		resource string
		want     Decision
	}{
		{device, "PutRecords", streamARN, Allowed},
		{device, "putrecord", streamARN, Allowed},
		{device, "GetRecords", streamARN, NoDecision},
		{device, "PutRecord", streamARN + "/consumer/c:1", NoDecision},
		{other, "PutRecord", streamARN, NoDecision},
		{device, "DeleteStream", streamARN, Denied},
		{other, "ListShards", "arn:aws:kinesis:us-east-1:000000000000:stream/clicks", NoDecision}, // conditional Allow never allows
		{stranger, "DescribeStreamSummary", streamARN, Denied},                                    // NotPrincipal Deny
	} {
		require.Equal(t, tc.want, p.Decide(tc.who, tc.action, tc.resource), "%+v", tc)
	}
	var none *Policy
	require.Equal(t, NoDecision, none.Decide(device, "PutRecord", streamARN))
}

func FuzzParsePolicy(f *testing.F) {
	denyAll, err := ParsePolicy(`{"Statement":{"Effect":"Deny","Principal":"*","Action":"kinesis:*","Resource":"*"}}`)
	require.NoError(f, err)
	f.Add(`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"000000000000"},"Action":"kinesis:*","Resource":"*"}}`)
	f.Add(`{"Statement":[{"Effect":"Deny","NotPrincipal":"*","NotAction":["kinesis:Get?ecords"],"NotResource":"arn:[a]/\\x","Condition":{}}]}`)
	f.Add(`{"Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com","AWS":["*"]},"Action":"*","Resource":["arn:*"]}]}`)
	f.Fuzz(func(t *testing.T, doc string) {
		p, err := ParsePolicy(doc)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidPolicy)
			require.Nil(t, p)
			return
		}
		// A Deny of everything to everyone added to any policy leaves it
		// nothing it allows; and the policy alone allows only through an
		// unconditional Allow statement, denies only through a Deny.
		denied := &Policy{statements: append(slices.Clone(p.statements), denyAll.statements...)}
		var allows, denies bool
		for _, st := range p.statements {
			allows = allows || !st.deny && !st.conditional
			denies = denies || st.deny
		}
		for _, who := range []Principal{{Account: "000000000000", KeyID: "K"}, {Account: "111111111111", KeyID: "AKIDX"}} {
			for _, action := range []string{"PutRecord", "GetRecords", "DeleteResourcePolicy"} {
				for _, resource := range []string{streamARN, streamARN + "/consumer/c:1", "arn:aws:kinesis:eu-west-1:111111111111:stream/x"} {
					require.Equal(t, Denied, denied.Decide(who, action, resource), "%s %s %s", who.ARN(), action, resource)
					switch p.Decide(who, action, resource) {
					case Allowed:
						require.True(t, allows, "allowed without an Allow statement")
					case Denied:
						require.True(t, denies, "denied without a Deny statement")
					}
				}
			}
		}
	})
}
