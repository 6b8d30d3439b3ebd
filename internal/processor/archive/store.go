package archive

import (
	"context"
	"strings"

	objectsink "github.com/runnel-dev/runnel/internal/sink/object"
)

// S3Config locates a bucket (see objectsink.S3Config).
type S3Config = objectsink.S3Config

// PutObjectAPI is the part of the S3 client the archive calls.
type PutObjectAPI = objectsink.PutObjectAPI

// store is where objects go: the object sink, with the content type of
// the archive's objects.
type store struct {
	objectsink.Store
}

// contentType is the media type of an object, by its name.
func contentType(key string) string {
	switch {
	case strings.HasSuffix(key, ".gz"):
		return "application/gzip"
	case strings.HasSuffix(key, ".zst"):
		return "application/zstd"
	case strings.HasSuffix(key, ".parquet"):
		return "application/vnd.apache.parquet"
	}
	return "application/x-ndjson"
}

func (s store) put(ctx context.Context, key string, body []byte) error {
	return s.Put(ctx, objectsink.Object{Key: key, Body: body, ContentType: contentType(key)})
}
