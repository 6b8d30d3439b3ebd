// Package object is the object sink: whole objects written under keys to
// a local directory or an S3 bucket (any S3-compatible endpoint). A put
// replaces an object of the same key, and a reader never sees part of
// one: a file is written to a synced temporary file renamed into place,
// an S3 object by one PutObject. The archive and window processors write
// through it.
package object

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/runnel-dev/runnel/internal/kinesisclient"
	"github.com/runnel-dev/runnel/internal/options"
	"github.com/runnel-dev/runnel/internal/sink"
)

// Object is one object to store.
type Object struct {
	// Key is the object's name under the store: a path with / between
	// directories.
	Key string
	// Body is the object's content.
	Body []byte
	// ContentType is the S3 Content-Type. Default
	// application/x-ndjson.
	ContentType string
}

// Store puts objects. Put replaces an object of the same key and returns
// an error marked sink.Poison when the store refuses the object itself.
type Store interface {
	Put(ctx context.Context, o Object) error
	// Target names the store in waits and logs: "directory D",
	// "s3://bucket/prefix".
	Target() string
}

// Getter is a Store that reads objects back. Get returns an error
// wrapping fs.ErrNotExist when there is no object of that key.
type Getter interface {
	Get(ctx context.Context, key string) ([]byte, error)
}

// Dir stores objects as files under a directory, creating the
// directories a key names.
type Dir struct{ Dir string }

var (
	_ Store  = Dir{}
	_ Getter = Dir{}
)

// Get reads the file Dir/Key.
func (d Dir) Get(_ context.Context, key string) ([]byte, error) {
	return os.ReadFile(filepath.Join(d.Dir, filepath.FromSlash(key)))
}

// Put writes o as the file Dir/Key.
func (d Dir) Put(_ context.Context, o Object) error {
	name := filepath.Join(d.Dir, filepath.FromSlash(o.Key))
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return fmt.Errorf("creating directory for %s: %w", o.Key, err)
	}
	if err := WriteFile(name, func(w io.Writer) error { _, err := w.Write(o.Body); return err }); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// Target is "directory Dir".
func (d Dir) Target() string { return "directory " + d.Dir }

// S3Config locates a bucket. Credentials come from the AWS SDK's default
// chain (with the local fallback of kinesisclient.Config).
type S3Config struct {
	// Bucket is required.
	Bucket string `yaml:"bucket" json:"bucket"`
	// Prefix is put before every key, e.g. "raw/clicks/". Default "".
	Prefix string `yaml:"prefix" json:"prefix"`
	// Endpoint is an S3-compatible endpoint URL. Default: AWS
	// (AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL are honoured).
	Endpoint string `yaml:"endpoint" json:"endpoint"`
	// Region; default from the SDK's sources, else us-east-1.
	Region string `yaml:"region" json:"region"`
	// ForcePathStyle addresses the bucket as <endpoint>/<bucket>/ rather
	// than as a host name. Default false.
	ForcePathStyle bool `yaml:"forcePathStyle" json:"forcePathStyle"`
	// ExpectedBucketOwner, when set, is the account id every PutObject
	// asks S3 to check owns the bucket (S3 refuses the put otherwise).
	// Default: no check.
	ExpectedBucketOwner string `yaml:"expectedBucketOwner" json:"expectedBucketOwner"`
}

// S3Fields declares S3Config as an option of a processor.
var S3Fields = []options.Field{
	{Name: "bucket", Required: true, Doc: "The bucket."},
	{Name: "prefix", Doc: "Put before every key, e.g. `raw/clicks/`."},
	{Name: "endpoint", DefaultDoc: "AWS (AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL are honoured)", Doc: "An S3-compatible endpoint URL."},
	{Name: "region", DefaultDoc: "the AWS SDK's sources, else us-east-1", Doc: "The bucket's region."},
	{Name: "forcePathStyle", Doc: "Address the bucket as `<endpoint>/<bucket>/` rather than as a host name."},
	{Name: "expectedBucketOwner", DefaultDoc: "no check", Doc: "The account id that must own the bucket: every PutObject asks S3 to refuse the put otherwise."},
}

// PutObjectAPI is the part of the S3 client the S3 store calls.
type PutObjectAPI interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// S3 stores objects in a bucket with PutObject, keys under Prefix.
type S3 struct {
	API    PutObjectAPI
	Bucket string
	Prefix string
	// ExpectedBucketOwner, when set, is sent with every PutObject.
	ExpectedBucketOwner string
}

var (
	_ Store  = (*S3)(nil)
	_ Getter = (*S3)(nil)
)

// GetObjectAPI is the part of the S3 client Get calls.
type GetObjectAPI interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// NewS3 returns the S3 store c locates.
func NewS3(ctx context.Context, c S3Config) (*S3, error) {
	cfg, err := kinesisclient.Config(ctx, c.Endpoint, kinesisclient.Options{Region: c.Region, Service: "S3"})
	if err != nil {
		return nil, err
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = cfg.BaseEndpoint
		o.UsePathStyle = c.ForcePathStyle
	})
	return &S3{API: client, Bucket: c.Bucket, Prefix: c.Prefix, ExpectedBucketOwner: c.ExpectedBucketOwner}, nil
}

// Put puts o as Prefix+Key.
func (s *S3) Put(ctx context.Context, o Object) error {
	ct := o.ContentType
	if ct == "" {
		ct = "application/x-ndjson"
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.Bucket),
		Key:           aws.String(s.Prefix + o.Key),
		Body:          bytes.NewReader(o.Body),
		ContentLength: aws.Int64(int64(len(o.Body))),
		ContentType:   aws.String(ct),
	}
	if s.ExpectedBucketOwner != "" {
		in.ExpectedBucketOwner = aws.String(s.ExpectedBucketOwner)
	}
	if _, err := s.API.PutObject(ctx, in); err != nil {
		return classify(fmt.Errorf("putting s3://%s/%s%s: %w", s.Bucket, s.Prefix, o.Key, err))
	}
	return nil
}

// Get reads the object Prefix+Key. An API that cannot get objects finds
// none.
func (s *S3) Get(ctx context.Context, key string) ([]byte, error) {
	api, ok := s.API.(GetObjectAPI)
	if !ok {
		return nil, fmt.Errorf("getting s3://%s/%s%s: %w", s.Bucket, s.Prefix, key, fs.ErrNotExist)
	}
	out, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(s.Prefix + key)})
	if _, missing := errors.AsType[*types.NoSuchKey](err); missing {
		err = fs.ErrNotExist
	}
	if err != nil {
		return nil, fmt.Errorf("getting s3://%s/%s%s: %w", s.Bucket, s.Prefix, key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("reading s3://%s/%s%s: %w", s.Bucket, s.Prefix, key, err)
	}
	return body, nil
}

// Target is "s3://Bucket/Prefix".
func (s *S3) Target() string { return "s3://" + s.Bucket + "/" + s.Prefix }

// classify marks as poison the S3 errors an object earns by what it is:
// a key or object S3 will not take however often it is sent.
func classify(err error) error {
	return sink.PoisonCodes(err, "KeyTooLongException", "EntityTooLarge", "InvalidObjectName")
}

// Writer puts batches of objects into a Store, each batch retried
// through Retry while the store is unavailable (objects already put are
// not put again within one Write).
type Writer struct {
	Store Store
	Retry *sink.Retry
}

var _ sink.Writer[Object] = (*Writer)(nil)

// NewWriter returns a writer to store with its own Retry.
func NewWriter(store Store) *Writer {
	return &Writer{Store: store, Retry: &sink.Retry{Target: store.Target()}}
}

// Write puts every object of batch, in order.
func (w *Writer) Write(ctx context.Context, batch []Object) error {
	done := 0
	return w.Retry.Do(ctx, func(ctx context.Context) error {
		for ; done < len(batch); done++ {
			if err := w.Store.Put(ctx, batch[done]); err != nil {
				return err
			}
		}
		return nil
	})
}

// WriteFile writes the file name so that after a crash it holds either
// its old content or all that write wrote: a synced temporary file in the
// same directory renamed over it, and the directory synced.
func WriteFile(name string, write func(w io.Writer) error) error {
	dir := filepath.Dir(name)
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	bw := bufio.NewWriterSize(f, 256<<10)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory, making the names in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}
