// Package kinesisclient builds the aws-sdk-go-v2 Kinesis client every runnel
// command uses, so they all resolve endpoint, region and credentials alike.
package kinesisclient

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// DefaultEndpoint is where `runnel serve` listens unless told otherwise.
const DefaultEndpoint = "http://127.0.0.1:4567"

// AWS is the endpoint value that selects the SDK's own endpoint resolution,
// that is real AWS Kinesis in the configured region.
const AWS = "aws"

// Options select the endpoint and region. Zero values mean: the endpoint
// from AWS_ENDPOINT_URL_KINESIS or AWS_ENDPOINT_URL when set, otherwise
// DefaultEndpoint; the region from the SDK's usual sources, otherwise
// us-east-1.
type Options struct {
	Endpoint string
	Region   string
}

// New returns a Kinesis client. Credentials come from the SDK's default
// chain; when the chain has none and the endpoint is not AWS, fixed local
// credentials are used, since runnel serve does not check them by default.
func New(ctx context.Context, o Options) (*kinesis.Client, error) {
	endpoint := o.Endpoint
	if endpoint == "" && os.Getenv("AWS_ENDPOINT_URL_KINESIS") == "" && os.Getenv("AWS_ENDPOINT_URL") == "" {
		endpoint = DefaultEndpoint
	}
	local := endpoint != AWS
	var loadOpts []func(*config.LoadOptions) error
	if o.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(o.Region))
	}
	if local {
		// Off AWS there is no instance metadata service to ask for
		// credentials; asking would only delay and warn.
		loadOpts = append(loadOpts, config.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if local {
		if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
			cfg.Credentials = credentials.NewStaticCredentialsProvider("runnel", "runnel", "")
		}
	}
	return kinesis.NewFromConfig(cfg, func(ko *kinesis.Options) {
		if endpoint != "" && endpoint != AWS {
			ko.BaseEndpoint = aws.String(endpoint)
		}
	}), nil
}
