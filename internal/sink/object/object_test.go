package object_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/sink"
	"github.com/runnel-dev/runnel/internal/sink/object"
	"github.com/runnel-dev/runnel/internal/sink/sinktest"
	"github.com/runnel-dev/runnel/internal/testserver"
)

// flaky is a Dir whose Put fails while down is positive (counting down),
// and refuses keys named "bad" as S3 refuses a key too long.
type flaky struct {
	object.Dir
	down int
	puts []string
}

func (f *flaky) Put(ctx context.Context, o object.Object) error {
	if o.Key == "bad" {
		return sink.PoisonCodes(&smithy.GenericAPIError{Code: "KeyTooLongException"}, "KeyTooLongException")
	}
	if f.down > 0 {
		f.down--
		return errors.New("connection refused")
	}
	f.puts = append(f.puts, o.Key)
	return f.Dir.Put(ctx, o)
}

// TestWriterRetriesWithoutRewriting: a store that fails part way through
// a batch is retried from the object that failed, the wait reported;
// poison ends the write at once.
func TestWriterRetriesWithoutRewriting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st := &flaky{Dir: object.Dir{Dir: dir}}
	w := object.NewWriter(st)
	w.Retry.Base, w.Retry.Ceiling = time.Millisecond, 5*time.Millisecond
	rec := &sinktest.Recorder{}
	ctx := sink.WithReporter(context.Background(), rec)

	require.NoError(t, w.Write(ctx, []object.Object{{Key: "a/1.jsonl", Body: []byte("one\n")}}))
	st.down = 3
	require.NoError(t, w.Write(ctx, []object.Object{{Key: "a/2.jsonl", Body: []byte("two\n")}, {Key: "b/3.jsonl", Body: []byte("three\n")}}))
	require.Equal(t, []string{"a/1.jsonl", "a/2.jsonl", "b/3.jsonl"}, st.puts, "each object put once")
	b, err := os.ReadFile(filepath.Join(dir, "b", "3.jsonl"))
	require.NoError(t, err)
	require.Equal(t, "three\n", string(b))
	blocked, unblocked := rec.Waits()
	require.Len(t, blocked, 3)
	require.Equal(t, "directory "+dir, blocked[0].Target)
	require.Equal(t, 1, unblocked)

	err = w.Write(ctx, []object.Object{{Key: "bad"}})
	require.True(t, sink.IsPoison(err))

	st.down = 1 << 30
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err = w.Write(short, []object.Object{{Key: "c"}})
	require.ErrorIs(t, err, sink.ErrUnavailable)
}

// ownerRecorder is an HTTP transport that notes the expected bucket
// owner of every request it sends.
type ownerRecorder struct {
	mu     sync.Mutex
	owners []string
}

func (r *ownerRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.owners = append(r.owners, req.Header.Get("X-Amz-Expected-Bucket-Owner"))
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

// TestS3ExpectedBucketOwner puts objects to a real S3-compatible server
// (versitygw), which checks the owner as S3 does: with
// ExpectedBucketOwner set, PutObject sends it as
// x-amz-expected-bucket-owner, and another account's id is refused;
// without, no owner is asked for.
func TestS3ExpectedBucketOwner(t *testing.T) {
	srv := testserver.S3(t)
	srv.CreateBucket(t, "lake")
	rec := &ownerRecorder{}
	api := s3.New(srv.Client().Options(), func(o *s3.Options) { o.HTTPClient = &http.Client{Transport: rec} })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	acl, err := api.GetBucketAcl(ctx, &s3.GetBucketAclInput{Bucket: aws.String("lake")})
	require.NoError(t, err)
	owner := aws.ToString(acl.Owner.ID)
	t.Logf("bucket owner %q", owner)
	for _, expected := range []string{owner, ""} {
		st := &object.S3{API: api, Bucket: "lake", Prefix: "p/", ExpectedBucketOwner: expected}
		require.NoError(t, st.Put(ctx, object.Object{Key: "k" + expected, Body: []byte("x\n")}))
		rec.mu.Lock()
		got := rec.owners[len(rec.owners)-1]
		rec.mu.Unlock()
		require.Equal(t, expected, got)
	}
	st := &object.S3{API: api, Bucket: "lake", ExpectedBucketOwner: "999999999999"}
	err = st.Put(ctx, object.Object{Key: "other", Body: []byte("x\n")})
	var apiErr smithy.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, "AccessDenied", apiErr.ErrorCode())
}
