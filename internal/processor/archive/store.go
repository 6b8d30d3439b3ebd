package archive

import (
	"context"

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
	gzip bool
}

func (s store) put(ctx context.Context, key string, body []byte) error {
	ct := "application/x-ndjson"
	if s.gzip {
		ct = "application/gzip"
	}
	return s.Put(ctx, objectsink.Object{Key: key, Body: body, ContentType: ct})
}
