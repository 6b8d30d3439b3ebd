// Package kinesisclient builds the AWS configuration and the
// aws-sdk-go-v2 clients every runnel command uses (Kinesis, and through
// Config also S3 and DynamoDB), so they all resolve endpoint, region and
// credentials, retry connection errors and log alike.
package kinesisclient

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go/logging"
)

// DefaultEndpoint is where `runnel serve` listens unless told otherwise.
const DefaultEndpoint = "http://127.0.0.1:4567"

// AWS is the endpoint value that selects the SDK's own endpoint resolution,
// that is real AWS Kinesis in the configured region.
const AWS = "aws"

// localMaxBackoff caps the SDK's wait between attempts against a server
// that is not AWS: a local server that refuses connections is down, and
// a person at the terminal should hear so within a second.
const localMaxBackoff = 200 * time.Millisecond

// Options select the endpoint and region. Zero values mean: the endpoint
// from AWS_ENDPOINT_URL_KINESIS or AWS_ENDPOINT_URL when set, otherwise
// DefaultEndpoint; the region from the SDK's usual sources, otherwise
// us-east-1.
type Options struct {
	Endpoint string
	Region   string
	// Service is the service Config's clients call, as named in its
	// AWS_ENDPOINT_URL_<SERVICE> variable: Kinesis, DynamoDB or S3
	// (New sets Kinesis). Config reads that variable, then
	// AWS_ENDPOINT_URL, when given no endpoint. Default: neither is read.
	Service string
	// Logger receives the SDK's own log lines (such as a response body it
	// could not drain before reusing a connection) at debug level; nil
	// discards them. They never reach the terminal as "SDK WARN" lines.
	Logger *slog.Logger
}

// CheckEndpoint reports whether endpoint is usable: "aws", or an http://
// or https:// URL with a host.
func CheckEndpoint(endpoint string) error {
	if endpoint == AWS {
		return nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("endpoint %q is not a URL such as %s (or %q for AWS Kinesis)", endpoint, DefaultEndpoint, AWS)
	}
	return nil
}

// resolveEndpoint returns the endpoint a client of service (see
// Options.Service) calls: endpoint when given, else the value of
// AWS_ENDPOINT_URL_<SERVICE>, else that of AWS_ENDPOINT_URL, else ""
// (the SDK's own resolution). "" and AWS both mean AWS. The value is
// checked with CheckEndpoint.
func resolveEndpoint(service, endpoint string) (string, error) {
	if endpoint == "" && service != "" {
		for _, name := range []string{"AWS_ENDPOINT_URL_" + strings.ToUpper(service), "AWS_ENDPOINT_URL"} {
			if v := os.Getenv(name); v != "" {
				if err := CheckEndpoint(v); err != nil {
					return "", fmt.Errorf("$%s: %w", name, err)
				}
				return v, nil
			}
		}
	}
	if endpoint != "" {
		if err := CheckEndpoint(endpoint); err != nil {
			return "", err
		}
	}
	return endpoint, nil
}

// baseEndpoint is the BaseEndpoint option of a client of endpoint: nil
// for AWS.
func baseEndpoint(endpoint string) *string {
	if endpoint == "" || endpoint == AWS {
		return nil
	}
	return aws.String(endpoint)
}

// Config returns the AWS configuration every runnel client (Kinesis,
// DynamoDB, S3) is built from, for o.Service at endpoint: given, else
// from AWS_ENDPOINT_URL_<SERVICE> or AWS_ENDPOINT_URL, else AWS.
// cfg.BaseEndpoint is that endpoint (nil for AWS); a client sets its own
// BaseEndpoint option to it, so that a given endpoint wins over the
// environment's. Credentials come from the SDK's default chain; when the
// chain has none and the endpoint is not AWS, fixed local credentials
// are used, since runnel serve and the local S3 and DynamoDB servers do
// not check them by default, and the instance metadata service is not
// asked. Calls that fail to connect, including a connection lost while an
// answer arrives, are retried by the SDK's standard retryer, which waits
// at most localMaxBackoff between attempts when the endpoint is not AWS.
func Config(ctx context.Context, endpoint string, o Options) (aws.Config, error) {
	endpoint, err := resolveEndpoint(o.Service, endpoint)
	if err != nil {
		return aws.Config{}, err
	}
	local := baseEndpoint(endpoint) != nil
	var loadOpts []func(*config.LoadOptions) error
	if o.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(o.Region))
	}
	if local {
		// Off AWS there is no instance metadata service to ask for
		// credentials; asking would only delay and warn.
		loadOpts = append(loadOpts, config.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	}
	loadOpts = append(loadOpts, config.WithLogger(sdkLogger(o.Logger)), config.WithClientLogMode(0))
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	// Wrapped after loading, which configures the SDK's own client (with
	// AWS_CA_BUNDLE, for one) and accepts no other.
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = awshttp.NewBuildableClient()
	}
	cfg.HTTPClient = memoryBodies{cfg.HTTPClient}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	cfg.BaseEndpoint = baseEndpoint(endpoint)
	if local {
		if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
			cfg.Credentials = credentials.NewStaticCredentialsProvider("runnel", "runnel", "")
		}
		cfg.Retryer = func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) { so.MaxBackoff = localMaxBackoff })
		}
	}
	return cfg, nil
}

// New returns a Kinesis client for o.Endpoint (see Options and Config).
func New(ctx context.Context, o Options) (*kinesis.Client, error) {
	o.Service = "Kinesis"
	endpoint, err := resolveEndpoint(o.Service, o.Endpoint)
	if err != nil {
		return nil, err
	}
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	cfg, err := Config(ctx, endpoint, o)
	if err != nil {
		return nil, err
	}
	return kinesis.NewFromConfig(cfg, func(ko *kinesis.Options) {
		ko.BaseEndpoint = cfg.BaseEndpoint
	}), nil
}

// ConnectionRetryer is the SDK's standard retryer limited to connection
// errors, without the client-side retry quota: for callers that handle
// every API error themselves (the producer retries record by record) and
// for tests that must see each API error as the server sent it.
func ConnectionRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.Retryables = []retry.IsErrorRetryable{retry.NoRetryCanceledError{}, retry.RetryableConnectionError{}}
		o.RateLimiter = ratelimit.None
	})
}

// HTTPClient returns the HTTP client of runnel's AWS clients: the SDK's
// own, sending each request body from memory. The SDK closes a request
// body as soon as the answer begins; when net/http sends a body of a type
// it does not know as a separate write, its writer may still be reading
// that body, and the transport then closes the connection under the
// arriving answer ("use of closed network connection",
// aws/aws-sdk-go-v2#2737). A body in memory goes out with the headers.
// Transport options (net/http's) apply to the SDK client's transport.
func HTTPClient(transport ...func(*http.Transport)) aws.HTTPClient {
	c := awshttp.NewBuildableClient()
	for _, t := range transport {
		c = c.WithTransportOptions(t)
	}
	return memoryBodies{c}
}

type memoryBodies struct{ c aws.HTTPClient }

func (m memoryBodies) Do(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		// Sized once from the declared length (a PutRecords body is
		// up to 5 MiB), not grown from 512 bytes as io.ReadAll would.
		buf := bytes.NewBuffer(make([]byte, 0, max(r.ContentLength, 0)+bytes.MinRead))
		if _, err := buf.ReadFrom(r.Body); err != nil {
			return nil, fmt.Errorf("reading the request body: %w", err)
		}
		b := buf.Bytes()
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	return m.c.Do(r)
}

// sdkLogger sends the SDK's log lines to l at debug level, or nowhere.
func sdkLogger(l *slog.Logger) logging.Logger {
	if l == nil {
		return logging.Nop{}
	}
	return logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
		l.Debug(fmt.Sprintf(format, v...), "source", "aws-sdk", "level", string(c))
	})
}
