package kinesisclient_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesisclient"
	"github.com/runnel-dev/runnel/internal/testserver"
)

// TestConfigResolvesEndpointAndLocalCredentials checks, for a user with
// no AWS setup, which endpoint each client's configuration carries and
// that any endpoint but AWS, given or from the environment, gets the
// local credentials.
func TestConfigResolvesEndpointAndLocalCredentials(t *testing.T) {
	testserver.WithoutAWSCredentials(t)
	t.Setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000")
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:8000")
	for _, tc := range []struct {
		name, service, endpoint string
		want                    string // "" for AWS
	}{
		{"given", "DynamoDB", "http://127.0.0.1:7000", "http://127.0.0.1:7000"},
		{"given wins over the environment", "S3", "http://127.0.0.1:7000", "http://127.0.0.1:7000"},
		{"service variable", "S3", "", "http://127.0.0.1:9000"},
		{"global variable", "DynamoDB", "", "http://127.0.0.1:8000"},
		{"aws", "DynamoDB", kinesisclient.AWS, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := kinesisclient.Config(t.Context(), tc.endpoint, kinesisclient.Options{Service: tc.service})
			require.NoError(t, err)
			require.Equal(t, "us-east-1", cfg.Region)
			if tc.want == "" {
				require.Nil(t, cfg.BaseEndpoint)
				return
			}
			require.Equal(t, tc.want, aws.ToString(cfg.BaseEndpoint))
			creds, err := cfg.Credentials.Retrieve(t.Context())
			require.NoError(t, err, "local credentials off AWS")
			require.Equal(t, "runnel", creds.AccessKeyID)
		})
	}

	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", "localhost:8000")
	_, err := kinesisclient.Config(t.Context(), "", kinesisclient.Options{Service: "DynamoDB"})
	require.ErrorContains(t, err, "$AWS_ENDPOINT_URL_DYNAMODB")
}
