package object_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/sink"
	"github.com/runnel-dev/runnel/internal/sink/object"
	"github.com/runnel-dev/runnel/internal/sink/sinktest"
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
