package archive

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/runnel-dev/runnel/internal/kinesisclient"
)

// store is where objects go. Put replaces an object of the same key.
type store interface {
	Put(ctx context.Context, key string, body []byte) error
}

// dirStore writes objects as files under a directory: to a temporary
// file, fsynced, then renamed into place, so a reader never sees a partial
// object and a written object survives a crash.
type dirStore struct{ dir string }

func (d dirStore) Put(_ context.Context, key string, body []byte) error {
	name := filepath.Join(d.dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return fmt.Errorf("creating directory for %s: %w", key, err)
	}
	if err := writeFileSync(name, func(w io.Writer) error { _, err := w.Write(body); return err }); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// PutObjectAPI is the part of the S3 client the archive calls.
type PutObjectAPI interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// s3Store writes objects to a bucket with PutObject.
type s3Store struct {
	api    PutObjectAPI
	bucket string
	prefix string
	gzip   bool
}

func newS3Store(ctx context.Context, c *S3Config, gzip bool) (*s3Store, error) {
	cfg, err := kinesisclient.Config(ctx, c.Endpoint, kinesisclient.Options{Region: c.Region})
	if err != nil {
		return nil, err
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
		o.UsePathStyle = c.ForcePathStyle
	})
	return &s3Store{api: client, bucket: c.Bucket, prefix: c.Prefix, gzip: gzip}, nil
}

func (s *s3Store) Put(ctx context.Context, key string, body []byte) error {
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(s.prefix + key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String("application/x-ndjson"),
	}
	if s.gzip {
		in.ContentType = aws.String("application/gzip")
	}
	if _, err := s.api.PutObject(ctx, in); err != nil {
		return fmt.Errorf("putting s3://%s/%s%s: %w", s.bucket, s.prefix, key, err)
	}
	return nil
}
